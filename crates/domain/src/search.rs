//! Search text folding: what a search box compares, so "lukasz" finds "Łukasz".

/// `s` in lower case with the diacritics of Latin letters removed (Polish ą ć ę ł ń ó
/// ś ź ż and the rest of Latin-1 and Latin Extended-A), runs of whitespace made one
/// space and the ends trimmed. Search documents and search terms both go through it,
/// so matching is case- and accent-insensitive on every engine alike (SQLite's own
/// folding leaves ł alone: it has no Unicode decomposition).
///
/// ```
/// use napiatke_domain::fold_search;
/// assert_eq!(fold_search("  Łukasz   ŻÓŁĆ "), "lukasz zolc");
/// assert_eq!(fold_search("Müller-Straße"), "muller-strasse");
/// ```
#[must_use]
pub fn fold_search(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        if c.is_whitespace() {
            space = !out.is_empty();
            continue;
        }
        if space {
            out.push(' ');
            space = false;
        }
        match fold_char(c) {
            Fold::One(f) => out.push(f),
            Fold::Two(a, b) => {
                out.push(a);
                out.push(b);
            }
            Fold::Keep => out.extend(c.to_lowercase()),
        }
    }
    out
}

enum Fold {
    One(char),
    Two(char, char),
    Keep,
}

fn fold_char(c: char) -> Fold {
    let one = match c {
        'A'..='Z' => return Fold::One(c.to_ascii_lowercase()),
        'a'..='z' | '0'..='9' => return Fold::One(c),
        'ß' => return Fold::Two('s', 's'),
        'Æ' | 'æ' => return Fold::Two('a', 'e'),
        'Œ' | 'œ' => return Fold::Two('o', 'e'),
        'À'..='Å' | 'à'..='å' | 'Ā'..='ą' => 'a',
        'Ç' | 'ç' | 'Ć'..='č' => 'c',
        'Ď'..='đ' | 'Ð' | 'ð' => 'd',
        'È'..='Ë' | 'è'..='ë' | 'Ē'..='ě' => 'e',
        'Ĝ'..='ģ' => 'g',
        'Ĥ'..='ħ' => 'h',
        'Ì'..='Ï' | 'ì'..='ï' | 'Ĩ'..='ı' => 'i',
        'Ĵ' | 'ĵ' => 'j',
        'Ķ' | 'ķ' | 'ĸ' => 'k',
        'Ĺ'..='ł' => 'l',
        'Ñ' | 'ñ' | 'Ń'..='ŋ' => 'n',
        'Ò'..='Ö' | 'Ø' | 'ò'..='ö' | 'ø' | 'Ō'..='ő' => 'o',
        'Ŕ'..='ř' => 'r',
        'Ś'..='š' => 's',
        'Ţ'..='ŧ' => 't',
        'Ù'..='Ü' | 'ù'..='ü' | 'Ũ'..='ų' => 'u',
        'Ŵ' | 'ŵ' => 'w',
        'Ý' | 'ý' | 'ÿ' | 'Ŷ'..='Ÿ' => 'y',
        'Ź'..='ž' => 'z',
        _ => return Fold::Keep,
    };
    Fold::One(one)
}

#[cfg(test)]
mod tests {
    use super::fold_search;

    #[test]
    fn polish_letters_fold_to_ascii() {
        assert_eq!(fold_search("ĄĆĘŁŃÓŚŹŻ ąćęłńóśźż"), "acelnoszz acelnoszz");
    }

    #[test]
    fn other_scripts_are_lowercased_and_kept() {
        assert_eq!(fold_search("Ωμέγα"), "ωμέγα");
        assert_eq!(fold_search("jan_k%50"), "jan_k%50");
        assert_eq!(fold_search("\t"), "");
    }
}
