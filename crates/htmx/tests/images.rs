//! `responsive_image` and `lazy_image` as templates use them.

// Helpers outside #[test] functions may unwrap too: a panic is the failure report
// (clippy.toml's allow-unwrap-in-tests covers only the test functions).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use napiatke_htmx::{HtmxError, Templates};

const PLACEHOLDER: &str = "data:image/webp;base64,UklGRg==";

fn json(text: &str) -> tera::Value {
    text.parse().unwrap()
}

fn variant(format: &str, kind: &str, width: u32) -> String {
    let ext = if format == "jpeg" { "jpg" } else { format };
    let prefix = if kind == "width" { "w" } else { "t" };
    format!(
        r#"{{"path": "ab/ab12cd34ef56ab12/{prefix}{width}-1a2b3c4d.{ext}", "format": "{format}",
            "kind": "{kind}", "width": {width}, "height": {}, "bytes": 9000}}"#,
        if kind == "width" {
            width * 5 / 8
        } else {
            width
        }
    )
}

/// A 2560x1600 photo with `variants`, in the order given.
fn photo(status: &str, variants: &[String]) -> tera::Value {
    json(&format!(
        r#"{{"id": 7, "width": 2560, "height": 1600, "has_alpha": false,
            "placeholder": "{PLACEHOLDER}", "status": "{status}", "variants": [{}]}}"#,
        variants.join(",")
    ))
}

/// Every variant the images crate makes for a large photo, shuffled.
fn ladder(formats: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for width in [960, 320, 1920, 640, 1280] {
        for f in formats {
            out.push(variant(f, "width", width));
        }
    }
    for f in formats {
        out.push(variant(f, "thumbnail", 300));
    }
    out
}

fn render(template: &str, image: &tera::Value) -> Result<String, HtmxError> {
    let t = Templates::from_sources_with(&[("p.html", template)], None)?;
    let mut ctx = tera::Context::new();
    ctx.insert("image", image);
    ctx.insert("hostile", "\"><script>alert(1)</script>");
    t.render("p.html", &ctx)
}

fn ok(template: &str, image: &tera::Value) -> String {
    render(template, image).unwrap()
}

fn srcset(ext: &str) -> String {
    [320, 640, 960, 1280, 1920]
        .map(|w| format!("/media/ab/ab12cd34ef56ab12/w{w}-1a2b3c4d.{ext} {w}w"))
        .join(", ")
}

/// The placeholder layer stacked under a picture, with the picture's class.
fn layer(class: &str) -> String {
    format!(
        "<img class=\"ph-blur {class}\" src=\"data:image/webp;base64,UklGRg==\" alt=\"\" aria-hidden=\"true\">"
    )
}

#[test]
fn full_ladder_in_three_formats() {
    let html = ok(
        "{{ responsive_image(image=image, alt='Sala 4', sizes='(min-width: 40rem) 50vw, 100vw', class='hero') }}",
        &photo("ready", &ladder(&["jpeg", "avif", "webp"])),
    );
    let sizes = "sizes=\"(min-width: 40rem) 50vw, 100vw\"";
    assert_eq!(
        html,
        format!(
            "<span class=\"ph ph-block\">{}<picture>\
             <source type=\"image/avif\" srcset=\"{}\" {sizes}>\
             <source type=\"image/webp\" srcset=\"{}\" {sizes}>\
             <img src=\"/media/ab/ab12cd34ef56ab12/w960-1a2b3c4d.jpg\" srcset=\"{}\" {sizes} \
             width=\"2560\" height=\"1600\" alt=\"Sala 4\" loading=\"lazy\" decoding=\"async\" \
             class=\"hero\" data-placeholder></picture></span>",
            layer("hero"),
            srcset("avif"),
            srcset("webp"),
            srcset("jpg"),
        )
    );
}

#[test]
fn defaults_fill_sizes_and_leave_out_an_empty_class() {
    let html = ok(
        "{{ responsive_image(image=image, alt='') }}",
        &photo("ready", &ladder(&["jpeg"])),
    );
    assert!(html.contains(" sizes=\"100vw\" width=\"2560\""), "{html}");
    assert!(html.contains(" alt=\"\" loading=\"lazy\""), "{html}");
    // The picture's own image has no class; the placeholder layer only its own.
    let picture = &html[html.find("<picture>").unwrap()..];
    assert!(!picture.contains("class="), "{html}");
    assert!(html.contains("<img class=\"ph-blur\" src="), "{html}");
    assert!(!html.contains("<source"), "{html}");
}

#[test]
fn missing_avif_has_no_avif_source() {
    let html = ok(
        "{{ responsive_image(image=image, alt='x') }}",
        &photo("ready", &ladder(&["webp", "jpeg"])),
    );
    assert!(!html.contains("avif"), "{html}");
    assert!(
        html.contains("<picture><source type=\"image/webp\" srcset=\""),
        "{html}"
    );
    assert_eq!(html.matches("<source").count(), 1, "{html}");
}

#[test]
fn without_jpeg_the_img_falls_back_to_webp() {
    let html = ok(
        "{{ responsive_image(image=image, alt='x') }}",
        &photo("ready", &ladder(&["avif", "webp"])),
    );
    assert_eq!(html.matches("<source").count(), 1, "{html}");
    assert!(html.contains("<source type=\"image/avif\""), "{html}");
    assert!(
        html.contains(&format!(
            "<img src=\"/media/ab/ab12cd34ef56ab12/w960-1a2b3c4d.webp\" srcset=\"{}\"",
            srcset("webp")
        )),
        "{html}"
    );
}

#[test]
fn a_small_photo_uses_its_largest_width_below_960() {
    let variants = [variant("jpeg", "width", 640), variant("jpeg", "width", 320)];
    let html = ok(
        "{{ responsive_image(image=image, alt='x') }}",
        &photo("ready", &variants),
    );
    assert!(
        html.contains("<img src=\"/media/ab/ab12cd34ef56ab12/w640-1a2b3c4d.jpg\""),
        "{html}"
    );
    // A photo narrower than the smallest rung has a single variant of its own width.
    let html = ok(
        "{{ responsive_image(image=image, alt='x') }}",
        &photo("ready", &[variant("jpeg", "width", 1200)]),
    );
    assert!(
        html.contains("src=\"/media/ab/ab12cd34ef56ab12/w1200-1a2b3c4d.jpg\""),
        "{html}"
    );
}

#[test]
fn processing_renders_the_placeholder_only() {
    // Thumbnails alone are no use to a full-width picture.
    let html = ok(
        "{{ responsive_image(image=image, alt='Sala', class='c') }}",
        &photo("processing", &[variant("jpeg", "thumbnail", 300)]),
    );
    assert_eq!(
        html,
        format!(
            "<img src=\"{PLACEHOLDER}\" width=\"2560\" height=\"1600\" alt=\"Sala\" \
             loading=\"lazy\" decoding=\"async\" class=\"c\" data-processing>"
        )
    );
    let html = ok(
        "{{ responsive_image(image=image, alt='Sala') }}",
        &photo("processing", &[]),
    );
    assert!(html.ends_with(" data-processing>"), "{html}");
    // A failed photo will not get better: no marker for a script to poll on.
    let html = ok(
        "{{ responsive_image(image=image, alt='Sala') }}",
        &photo("failed", &[]),
    );
    assert!(html.starts_with("<img src=\"data:"), "{html}");
    assert!(!html.contains("data-processing"), "{html}");
}

#[test]
fn null_or_absent_image_renders_nothing() {
    let null = tera::Value::Null;
    assert_eq!(
        ok("[{{ responsive_image(image=image, alt='Sala') }}]", &null),
        "[]"
    );
    assert_eq!(
        ok("[{{ lazy_image(image=image, alt='Ola') }}]", &null),
        "[]"
    );
    // No `image=` at all, as a template might write for a record without a photo
    // field: tera itself refuses a variable that is not in the context.
    assert_eq!(ok("[{{ responsive_image(alt='Sala') }}]", &null), "[]");
    let room = json(r#"{"name": "Sala", "photo": null}"#);
    assert_eq!(
        ok(
            "[{{ lazy_image(image=image.photo, alt=image.name) }}]",
            &room
        ),
        "[]"
    );
}

#[test]
fn eager_loads_at_once_with_high_priority() {
    let html = ok(
        "{{ responsive_image(image=image, alt='x', eager=true) }}",
        &photo("ready", &ladder(&["jpeg", "webp"])),
    );
    assert!(
        html.contains(" alt=\"x\" loading=\"eager\" fetchpriority=\"high\" decoding=\"async\""),
        "{html}"
    );
    assert!(!html.contains("lazy"), "{html}");
    let html = ok(
        "{{ responsive_image(image=image, alt='x', eager=true) }}",
        &photo("processing", &[]),
    );
    assert!(html.contains("fetchpriority=\"high\""), "{html}");
}

/// Every tag holds only `name="value"` pairs and bare `data-` flags: any `"` or
/// `>` that escaped escaping would break this.
fn assert_only_attributes(html: &str) {
    for tag in html
        .split('<')
        .filter(|t| !t.is_empty() && !t.starts_with('/'))
    {
        let tag = tag
            .strip_suffix('>')
            .unwrap_or_else(|| panic!("unclosed or split tag {tag:?}"));
        let mut rest = tag.split_once(' ').map_or("", |(_, r)| r);
        while !rest.is_empty() {
            let end = rest.find(['=', ' ']).unwrap_or(rest.len());
            let name = &rest[..end];
            assert!(
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
                "attribute {name:?} in {tag:?}"
            );
            if let Some(after) = rest[end..].strip_prefix("=\"") {
                let close = after
                    .find('"')
                    .unwrap_or_else(|| panic!("unterminated {name} in {tag:?}"));
                rest = &after[close + 1..];
                assert!(
                    rest.is_empty() || rest.starts_with(' '),
                    "junk after {name} in {tag:?}"
                );
            } else {
                assert!(name.starts_with("data-"), "bare {name} in {tag:?}");
                rest = &rest[end..];
            }
            rest = rest.trim_start_matches(' ');
        }
    }
}

#[test]
fn hostile_alt_class_and_paths_render_inert() {
    let image = json(
        r#"{"id": 1, "width": 100, "height": 100, "status": "ready",
            "placeholder": "data:image/png;base64,AA\"><script>alert(1)</script>",
            "variants": [
              {"path": "ab/\"><script>alert(1)</script> 1.webp", "format": "webp", "kind": "width", "width": 100},
              {"path": "ab/'onerror='alert(1)'.jpg", "format": "jpeg", "kind": "width", "width": 100},
              {"path": "ab/\"><script>.jpg", "format": "jpeg", "kind": "thumbnail", "width": 100}
            ]}"#,
    );
    for template in [
        "{{ responsive_image(image=image, alt=hostile, class=hostile, sizes=hostile) }}",
        "{{ lazy_image(image=image, alt=hostile, class=hostile) }}",
    ] {
        let html = ok(template, &image);
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("'"), "{html}");
        assert!(
            html.contains("&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert_only_attributes(&html);
    }
    let html = ok("{{ responsive_image(image=image, alt='x') }}", &image);
    // Percent-encoded, so the space cannot split the srcset entry either.
    assert!(
        html.contains(
            "srcset=\"/media/ab/%22%3E%3Cscript%3Ealert%281%29%3C/script%3E%201.webp 100w\""
        ),
        "{html}"
    );
    assert!(
        html.contains("src=\"/media/ab/%27onerror%3D%27alert%281%29%27.jpg\""),
        "{html}"
    );
    // The placeholder's quote is escaped for the attribute it sits in.
    assert!(
        html.contains(
            "<img class=\"ph-blur\" src=\"data:image/png;base64,AA&quot;&gt;&lt;script&gt;"
        ),
        "{html}"
    );
}

#[test]
fn lazy_image_uses_the_thumbnails() {
    let html = ok(
        "{{ lazy_image(image=image, alt='Ola K.', class='avatar') }}",
        &photo("ready", &ladder(&["webp", "jpeg", "avif"])),
    );
    assert_eq!(
        html,
        format!(
            "<span class=\"ph\">{}<picture>\
             <source type=\"image/avif\" srcset=\"/media/ab/ab12cd34ef56ab12/t300-1a2b3c4d.avif\">\
             <source type=\"image/webp\" srcset=\"/media/ab/ab12cd34ef56ab12/t300-1a2b3c4d.webp\">\
             <img src=\"/media/ab/ab12cd34ef56ab12/t300-1a2b3c4d.jpg\" width=\"48\" height=\"48\" \
             alt=\"Ola K.\" loading=\"lazy\" decoding=\"async\" class=\"avatar\" \
             data-placeholder></picture></span>",
            layer("avatar")
        )
    );
    let html = ok(
        "{{ lazy_image(image=image, alt='', size=96) }}",
        &photo("ready", &ladder(&["jpeg"])),
    );
    assert!(
        html.contains(" width=\"96\" height=\"96\" alt=\"\""),
        "{html}"
    );
    assert!(!html.contains("<source"), "{html}");
}

#[test]
fn lazy_image_without_thumbnails_shows_the_placeholder_at_its_size() {
    let widths_only = [variant("jpeg", "width", 320)];
    for status in ["processing", "ready"] {
        let html = ok(
            "{{ lazy_image(image=image, alt='Ola', size=32) }}",
            &photo(status, &widths_only),
        );
        let marker = if status == "processing" {
            " data-processing"
        } else {
            ""
        };
        assert_eq!(
            html,
            format!(
                "<img src=\"{PLACEHOLDER}\" width=\"32\" height=\"32\" alt=\"Ola\" \
                 loading=\"lazy\" decoding=\"async\" class=\"ph-cover\"{marker}>"
            )
        );
    }
}

#[test]
fn unknown_formats_and_kinds_are_skipped() {
    let mut variants = ladder(&["jpeg"]);
    variants
        .push(r#"{"path": "ab/x.jxl", "format": "jxl", "kind": "width", "width": 640}"#.to_owned());
    variants.push(
        r#"{"path": "ab/x.jpg", "format": "jpeg", "kind": "banner", "width": 640}"#.to_owned(),
    );
    let html = ok(
        "{{ responsive_image(image=image, alt='x') }}",
        &photo("ready", &variants),
    );
    assert!(!html.contains("ab/x."), "{html}");
}

fn error(template: &str, image: &tera::Value) -> String {
    match render(template, image) {
        Ok(html) => panic!("expected an error, rendered {html}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn malformed_images_are_render_errors() {
    let cases = [
        (
            r#""ab/photo.jpg""#,
            "image must be an image record or null, got a string",
        ),
        (
            r#"{"id": 7, "height": 10, "variants": []}"#,
            "image 7: missing field `width`",
        ),
        (
            r#"{"id": 7, "width": 10, "height": "10"}"#,
            "image 7: `height`: invalid type: string \"10\"",
        ),
        (
            r#"{"id": 7, "width": 10, "height": 10, "variants": {}}"#,
            "image 7: `variants`: invalid type: map, expected a sequence",
        ),
        (
            r#"{"id": 7, "width": 10, "height": 10, "variants": [{"format": "jpeg", "kind": "width", "width": 10}]}"#,
            "image 7: `variants[0]`: missing field `path`",
        ),
        (
            r#"{"id": 7, "width": 10, "height": 10, "variants": [{"path": "a.jpg", "format": "jpeg", "kind": "width", "width": -1}]}"#,
            "image 7: `variants[0].width`: invalid value: integer `-1`",
        ),
        (
            r#"{"id": 7, "width": 10, "height": 10, "variants": [{"path": "../../etc/passwd", "format": "jpeg", "kind": "width", "width": 10}]}"#,
            "is not a relative path inside /media/",
        ),
        (
            r#"{"id": 7, "width": 10, "height": 10, "variants": [{"path": "//evil.example/x.jpg", "format": "jpeg", "kind": "width", "width": 10}]}"#,
            "is not a relative path inside /media/",
        ),
        (
            r#"{"id": 7, "width": 10, "height": 10, "placeholder": "https://tracker.example/p.gif"}"#,
            "image 7: `placeholder` must be a data: URI or null",
        ),
        (
            r#"{"id": 7, "width": 10, "height": 10, "status": 1}"#,
            "image 7: `status`: invalid type: integer `1`",
        ),
    ];
    for (image, expected) in cases {
        for f in ["responsive_image", "lazy_image"] {
            let e = error(
                &format!("{{{{ {f}(image=image, alt='x') }}}}"),
                &json(image),
            );
            assert!(
                e.contains(&format!("{f}(): ")) && e.contains(expected),
                "{image}: {e}"
            );
        }
    }
}

#[test]
fn wrong_arguments_are_render_errors_even_without_a_photo() {
    let null = tera::Value::Null;
    let cases = [
        ("responsive_image(image=image)", "needs alt=\"...\""),
        (
            "responsive_image(image=image, alt=3)",
            "alt must be a string, got a number",
        ),
        (
            "responsive_image(image=image, alt='x', sizes=50)",
            "sizes must be a string, got a number",
        ),
        (
            "responsive_image(image=image, alt='x', class=['a'])",
            "class must be a string, got a list",
        ),
        (
            "responsive_image(image=image, alt='x', eager='yes')",
            "eager must be true or false, got a string",
        ),
        (
            "responsive_image(image=image, alt='x', size='50vw')",
            "unknown argument(s) size",
        ),
        (
            "lazy_image(image=image, alt='x', size=0)",
            "size must be a positive whole number",
        ),
        (
            "lazy_image(image=image, alt='x', size='48px')",
            "size must be a positive whole number",
        ),
        ("lazy_image(img=image, alt='x')", "unknown argument(s) img"),
    ];
    for (call, expected) in cases {
        let e = error(&format!("{{{{ {call} }}}}"), &null);
        assert!(e.contains(expected), "{call}: {e}");
    }
}
