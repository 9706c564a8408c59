//! collectstatic: hash, rewrite, precompress, write a manifest.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{compressible, io_err, AssetsError};

/// The manifest's file name inside the static root.
pub const MANIFEST: &str = "staticfiles.json";

/// Hex digits of the content hash in a hashed name: 48 bits, so a collision between
/// two versions of one file is not a practical concern.
const HASH_LEN: usize = 12;

/// Compressed variants are kept only when they save at least this share (percent).
const MIN_SAVING_PERCENT: usize = 5;

/// `staticfiles.json`: logical name -> hashed name, and which compressed variants each
/// hashed file has (so a re-run knows what it already compressed, including the files
/// where compression did not pay).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version.
    pub version: u32,
    /// `css/app.css` -> `css/app.0123456789ab.css`.
    pub paths: BTreeMap<String, String>,
    /// Hashed name -> encodings written beside it (`br`, `gz`); absent = not
    /// compressible, empty = tried and not worth it.
    #[serde(default)]
    pub variants: BTreeMap<String, Vec<String>>,
}

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CollectReport {
    /// Source files collected.
    pub files: usize,
    /// Compressed variants made in this run.
    pub compressed: usize,
    /// Files whose variants were already there from an earlier run.
    pub reused: usize,
}

struct Collector<'a> {
    src: &'a Path,
    files: BTreeMap<String, PathBuf>,
    /// name -> (hashed name, final content)
    done: HashMap<String, (String, Vec<u8>)>,
    in_progress: HashSet<String>,
}

/// Collects `src` into `root` (see the crate docs). Idempotent: a second run with no
/// source change writes nothing and compresses nothing.
pub fn collect(src: &Path, root: &Path) -> Result<CollectReport, AssetsError> {
    let mut listed = Vec::new();
    files_under(src, src, &mut listed)?;
    let files: BTreeMap<String, PathBuf> = listed.into_iter().collect();
    let mut c = Collector {
        src,
        files,
        done: HashMap::new(),
        in_progress: HashSet::new(),
    };
    let names: Vec<String> = c.files.keys().cloned().collect();
    for name in &names {
        c.process(name)?;
    }
    let previous = read_manifest(root).unwrap_or_default();
    let mut manifest = Manifest {
        version: 1,
        ..Manifest::default()
    };
    let mut report = CollectReport {
        files: names.len(),
        ..CollectReport::default()
    };
    for name in &names {
        let Some((hashed, content)) = c.done.get(name) else {
            continue;
        };
        write_if_changed(&root.join(hashed), content)?;
        write_if_changed(&root.join(name), content)?;
        manifest.paths.insert(name.clone(), hashed.clone());
        if !compressible(name) {
            continue;
        }
        let known = previous.variants.get(hashed).filter(|encodings| {
            encodings
                .iter()
                .all(|e| root.join(format!("{hashed}.{e}")).is_file())
        });
        let encodings = match known {
            Some(encodings) => {
                report.reused += 1;
                encodings.clone()
            }
            None => {
                let mut made = Vec::new();
                for (encoding, bytes) in [("br", brotli(content)?), ("gz", gzip(content)?)] {
                    if bytes.len() * 100 <= content.len() * (100 - MIN_SAVING_PERCENT) {
                        write_if_changed(&root.join(format!("{hashed}.{encoding}")), &bytes)?;
                        made.push(encoding.to_owned());
                        report.compressed += 1;
                    }
                }
                made
            }
        };
        // The unhashed copy has the same bytes, so the same variants.
        for encoding in &encodings {
            let from = root.join(format!("{hashed}.{encoding}"));
            let to = root.join(format!("{name}.{encoding}"));
            let bytes = std::fs::read(&from).map_err(io_err(&from))?;
            write_if_changed(&to, &bytes)?;
        }
        manifest.variants.insert(hashed.clone(), encodings);
    }
    if manifest != previous {
        let path = root.join(MANIFEST);
        let json = serde_json::to_vec_pretty(&manifest).map_err(|e| AssetsError::Manifest {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        write_if_changed(&path, &json)?;
    }
    Ok(report)
}

/// Reads `root/staticfiles.json`.
pub(crate) fn read_manifest(root: &Path) -> Result<Manifest, AssetsError> {
    let path = root.join(MANIFEST);
    let bytes = std::fs::read(&path).map_err(|e| AssetsError::Manifest {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    serde_json::from_slice(&bytes).map_err(|e| AssetsError::Manifest {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

impl Collector<'_> {
    /// The hashed name of `name`, processing it (and, for CSS, what it refers to) first.
    fn process(&mut self, name: &str) -> Result<String, AssetsError> {
        if let Some((hashed, _)) = self.done.get(name) {
            return Ok(hashed.clone());
        }
        if !self.in_progress.insert(name.to_owned()) {
            return Err(AssetsError::Cycle(name.to_owned()));
        }
        let path = self.src.join(name);
        let raw = std::fs::read(&path).map_err(io_err(&path))?;
        let content = if name.ends_with(".css") {
            match String::from_utf8(raw) {
                Ok(text) => self.rewrite_css(name, &text)?.into_bytes(),
                Err(e) => e.into_bytes(),
            }
        } else {
            raw
        };
        let hashed = hashed_name(name, &content);
        self.in_progress.remove(name);
        self.done.insert(name.to_owned(), (hashed.clone(), content));
        Ok(hashed)
    }

    /// Rewrites every `url(...)` and `@import "..."` reference to a local file into its
    /// hashed name.
    fn rewrite_css(&mut self, name: &str, css: &str) -> Result<String, AssetsError> {
        let mut out = String::with_capacity(css.len());
        let mut rest = css;
        while let Some((before, reference, after)) = next_reference(rest) {
            out.push_str(before);
            out.push_str(&self.resolve(name, reference)?);
            rest = after;
        }
        out.push_str(rest);
        Ok(out)
    }

    fn resolve(&mut self, css_name: &str, reference: &str) -> Result<String, AssetsError> {
        let lower = reference.to_ascii_lowercase();
        if reference.is_empty()
            || reference.starts_with('#')
            || reference.starts_with('/')
            || lower.starts_with("data:")
            || lower.starts_with("http:")
            || lower.starts_with("https:")
        {
            return Ok(reference.to_owned());
        }
        let split = reference.find(['?', '#']).unwrap_or(reference.len());
        let (path, suffix) = reference.split_at(split);
        let dir = css_name.rsplit_once('/').map_or("", |(d, _)| d);
        let target = normalize(dir, path);
        let missing = || AssetsError::MissingReference {
            file: css_name.to_owned(),
            reference: reference.to_owned(),
            resolved: target.clone().unwrap_or_else(|| path.to_owned()),
        };
        let Some(resolved) = target.clone().filter(|t| self.files.contains_key(t)) else {
            return Err(missing());
        };
        let hashed = self.process(&resolved)?;
        let hashed_file = hashed.rsplit('/').next().unwrap_or(&hashed);
        let prefix = path.rsplit_once('/').map_or("", |(p, _)| p);
        Ok(if prefix.is_empty() {
            format!("{hashed_file}{suffix}")
        } else {
            format!("{prefix}/{hashed_file}{suffix}")
        })
    }
}

/// The next reference in `css`: (text before it, the reference, text after it).
fn next_reference(css: &str) -> Option<(&str, &str, &str)> {
    let lower = css.to_ascii_lowercase();
    let url = lower.find("url(");
    let import = lower.find("@import");
    let (start, is_url) = match (url, import) {
        (Some(u), Some(i)) if i < u => (i, false),
        (Some(u), _) => (u, true),
        (None, Some(i)) => (i, false),
        (None, None) => return None,
    };
    if is_url {
        let open = start + 4;
        let inner = &css[open..];
        let close = inner.find(')')?;
        let raw = &inner[..close];
        let trimmed = raw.trim();
        let unquoted = trimmed.trim_matches(|c| c == '"' || c == '\'');
        let offset = open + raw.find(unquoted).unwrap_or(0);
        Some((&css[..offset], unquoted, &css[offset + unquoted.len()..]))
    } else {
        let after = &css[start + 7..];
        let ws = after.len() - after.trim_start().len();
        let body = &after[ws..];
        let quote = body.chars().next()?;
        if quote != '"' && quote != '\'' {
            // `@import url(...)`: the url( branch handles it on the next step.
            let skip = start + 7;
            let (b, r, a) = next_reference(&css[skip..])?;
            let before_len = skip + b.len();
            return Some((&css[..before_len], r, a));
        }
        let end = body[1..].find(quote)?;
        let offset = start + 7 + ws + 1;
        Some((
            &css[..offset],
            &css[offset..offset + end],
            &css[offset + end..],
        ))
    }
}

/// `dir` joined with the relative `path`, with `.` and `..` resolved; `None` if it
/// climbs out of the source folder.
fn normalize(dir: &str, path: &str) -> Option<String> {
    let mut parts: Vec<&str> = dir.split('/').filter(|s| !s.is_empty()).collect();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            s => parts.push(s),
        }
    }
    Some(parts.join("/"))
}

/// `dir/name.ext` -> `dir/name.HASH.ext`.
fn hashed_name(name: &str, content: &[u8]) -> String {
    let digest = Sha256::digest(content);
    let hash: String = digest
        .iter()
        .take(HASH_LEN / 2)
        .map(|b| format!("{b:02x}"))
        .collect();
    let (dir, file) = name.rsplit_once('/').map_or(("", name), |(d, f)| (d, f));
    let hashed_file = match file.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{stem}.{hash}.{ext}"),
        _ => format!("{file}.{hash}"),
    };
    if dir.is_empty() {
        hashed_file
    } else {
        format!("{dir}/{hashed_file}")
    }
}

/// Every file below `dir` as (name relative to `root` with `/` separators, path),
/// skipping hidden files and folders (`.README.md`, editor droppings).
pub(crate) fn files_under(
    root: &Path,
    dir: &Path,
    out: &mut Vec<(String, PathBuf)>,
) -> Result<(), AssetsError> {
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let path = entry.map_err(io_err(dir))?.path();
        let file_name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if file_name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            files_under(root, &path, out)?;
        } else {
            let name = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            out.push((name, path));
        }
    }
    Ok(())
}

/// Writes only when the bytes differ, so unchanged files keep their mtime (and
/// Last-Modified) across runs.
fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<(), AssetsError> {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    // Write then rename: a server reading the root never sees half a file.
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, bytes).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

fn brotli(data: &[u8]) -> Result<Vec<u8>, AssetsError> {
    let mut out = Vec::with_capacity(data.len() / 3);
    {
        let mut w = brotli::CompressorWriter::new(&mut out, 64 * 1024, 11, 22);
        w.write_all(data).map_err(|e| AssetsError::Io {
            path: "brotli".to_owned(),
            source: e,
        })?;
    }
    Ok(out)
}

fn gzip(data: &[u8]) -> Result<Vec<u8>, AssetsError> {
    let mut enc = flate2::GzBuilder::new().mtime(0).write(
        Vec::with_capacity(data.len() / 3),
        flate2::Compression::best(),
    );
    let io = |e| AssetsError::Io {
        path: "gzip".to_owned(),
        source: e,
    };
    enc.write_all(data).map_err(io)?;
    enc.finish().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_found_in_every_form() {
        let css = "a{background:url( 'img/a.png' )} @import \"b.css\"; b{src:url(f.woff2?v=1#x)} @import url(c.css);";
        let mut found = Vec::new();
        let mut rest = css;
        while let Some((_, r, after)) = next_reference(rest) {
            found.push(r.to_owned());
            rest = after;
        }
        assert_eq!(found, ["img/a.png", "b.css", "f.woff2?v=1#x", "c.css"]);
    }

    #[test]
    fn paths_normalise_and_never_climb_out() {
        assert_eq!(
            normalize("css", "../img/a.png").as_deref(),
            Some("img/a.png")
        );
        assert_eq!(
            normalize("css/x", "./b/../c.png").as_deref(),
            Some("css/x/c.png")
        );
        assert_eq!(normalize("css", "../../etc/passwd"), None);
    }

    #[test]
    fn hashed_names_keep_folder_and_extension() {
        let h = hashed_name("css/app.css", b"x");
        assert!(
            h.starts_with("css/app.")
                && h.ends_with(".css")
                && h.len() == "css/app..css".len() + HASH_LEN,
            "{h}"
        );
        assert_eq!(
            hashed_name("LICENSE", b"x").len(),
            "LICENSE.".len() + HASH_LEN
        );
        assert_ne!(hashed_name("a.js", b"1"), hashed_name("a.js", b"2"));
    }
}
