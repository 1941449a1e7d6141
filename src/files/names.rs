//! Client-supplied file names, made safe to store and to send back: [`sanitise`] keeps only
//! the last path component with no control or reserved characters, and
//! [`content_disposition`] writes the header per RFC 6266 with RFC 8187 (ex-5987) encoding.
//! A name is only ever a label: storage keys are built from ids.

/// Longest kept name, in characters (extension included).
pub const MAX_NAME_CHARS: usize = 100;

/// The name used when nothing usable is left.
pub const FALLBACK_NAME: &str = "image";

/// A safe file name from `raw`: the part after the last `/` or `\` (`../../x` → `x`,
/// `C:\a\b.png` → `b.png`); control characters (C0, DEL, C1, bidi overrides) and
/// `" * : < > ? |` dropped; leading dots and spaces and trailing dots and spaces trimmed
/// (no hidden files, nothing Windows would alter); at most [`MAX_NAME_CHARS`] characters,
/// cut in the stem so the extension survives. Empty (or `.`/`..`) → [`FALLBACK_NAME`].
pub fn sanitise(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control() && !is_bidi_control(*c) && !matches!(c, '"' | '*' | ':' | '<' | '>' | '?' | '|'))
        .collect();
    let trimmed = cleaned.trim_start_matches(['.', ' ']).trim_end_matches(['.', ' ']);
    if trimmed.is_empty() {
        return FALLBACK_NAME.to_owned();
    }
    if trimmed.chars().count() <= MAX_NAME_CHARS {
        return trimmed.to_owned();
    }
    let (stem, ext) = match trimmed.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() && e.chars().count() <= 10 => (s, Some(e)),
        _ => (trimmed, None),
    };
    let ext_len = ext.map_or(0, |e| e.chars().count() + 1);
    let stem: String = stem.chars().take(MAX_NAME_CHARS - ext_len).collect();
    let stem = stem.trim_end_matches(['.', ' ']);
    match ext {
        Some(e) => format!("{stem}.{e}"),
        None => stem.to_owned(),
    }
}

/// Unicode bidirectional controls (U+202A–U+202E, U+2066–U+2069, U+200E/F): they make
/// `gpj.exe` display as `exe.jpg`. Not `char::is_control` (they are format characters).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `name` with the extension of `content_type` unless it already has one of its extensions
/// (`photo` + `image/png` → `photo.png`; `photo.JPG` + `image/jpeg` stays; `x.exe` +
/// `image/png` → `x.exe.png`), so a saved download opens as what it is.
pub fn with_extension(name: &str, content_type: &str) -> String {
    let exts: &[&str] = match content_type {
        "image/png" => &["png"],
        "image/jpeg" => &["jpg", "jpeg", "jpe"],
        "image/webp" => &["webp"],
        "image/gif" => &["gif"],
        "image/bmp" => &["bmp"],
        "image/tiff" => &["tif", "tiff"],
        "image/avif" => &["avif"],
        _ => return name.to_owned(),
    };
    let has = name.rsplit_once('.').is_some_and(|(_, e)| exts.iter().any(|x| x.eq_ignore_ascii_case(e)));
    if has { name.to_owned() } else { sanitise(&format!("{name}.{}", exts[0])) }
}

/// The file name a client sent in `Content-Disposition` (`attachment; filename="a.png"` or
/// `filename*=UTF-8''%C3%A9.png`, which wins, RFC 6266 §4.3), or `None`. Only the name is
/// read; it is sanitised by the caller.
pub fn from_content_disposition(value: &str) -> Option<String> {
    let mut plain = None;
    for param in split_params(value).into_iter().skip(1) {
        let Some((key, val)) = param.split_once('=') else { continue };
        let key = key.trim().to_ascii_lowercase();
        let val = val.trim();
        if key == "filename*" {
            let (charset, rest) = val.split_once('\'')?;
            let (_lang, encoded) = rest.split_once('\'')?;
            if !charset.eq_ignore_ascii_case("utf-8") {
                continue;
            }
            if let Some(decoded) = percent_decode(encoded) {
                return Some(decoded);
            }
        } else if key == "filename" {
            plain = Some(unquote(val));
        }
    }
    plain
}

/// Splits at `;` outside double quotes.
fn split_params(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => {
                out.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&value[start..]);
    out
}

fn unquote(v: &str) -> String {
    match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                out.push(if c == '\\' { chars.next().unwrap_or('\\') } else { c });
            }
            out
        }
        None => v.to_owned(),
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `Content-Disposition: <kind>; filename="<ascii fallback>"; filename*=UTF-8''<pct-encoded>`
/// (RFC 6266 §4.3, RFC 8187 §3.2.3: attr-char kept, every other byte `%XX`). The fallback
/// replaces non-ASCII characters with `_`. `kind` is `inline` or `attachment`.
pub fn content_disposition(kind: &str, name: &str) -> String {
    let fallback: String = name
        .chars()
        .map(|c| if c.is_ascii() && !c.is_ascii_control() && c != '"' && c != '\\' && c != '%' { c } else { '_' })
        .collect();
    let mut encoded = String::with_capacity(name.len() * 3);
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_components_are_dropped() {
        assert_eq!(sanitise("../../x"), "x");
        assert_eq!(sanitise("..\\..\\windows\\evil.png"), "evil.png");
        assert_eq!(sanitise("/etc/passwd"), "passwd");
        assert_eq!(sanitise("a/b/"), FALLBACK_NAME);
        assert_eq!(sanitise(".."), FALLBACK_NAME);
        assert_eq!(sanitise(""), FALLBACK_NAME);
    }

    #[test]
    fn control_reserved_and_bidi_characters_are_dropped() {
        assert_eq!(sanitise("a\u{0}b\r\n\tc.png"), "abc.png");
        assert_eq!(sanitise("x\u{202E}gnp.exe"), "xgnp.exe");
        assert_eq!(sanitise("what?*:<>|\".png"), "what.png");
        assert_eq!(sanitise("  .hidden.png. "), "hidden.png");
    }

    #[test]
    fn long_names_keep_their_extension() {
        let long = format!("{}.jpeg", "é".repeat(300));
        let s = sanitise(&long);
        assert_eq!(s.chars().count(), MAX_NAME_CHARS);
        assert!(s.ends_with(".jpeg"));
    }

    #[test]
    fn the_sniffed_type_supplies_a_missing_extension() {
        assert_eq!(with_extension("photo", "image/png"), "photo.png");
        assert_eq!(with_extension("photo.JPG", "image/jpeg"), "photo.JPG");
        assert_eq!(with_extension("x.exe", "image/png"), "x.exe.png");
    }

    #[test]
    fn names_are_read_from_content_disposition() {
        assert_eq!(from_content_disposition("attachment; filename=\"a b.png\"").as_deref(), Some("a b.png"));
        assert_eq!(from_content_disposition("attachment; filename=plain.gif").as_deref(), Some("plain.gif"));
        assert_eq!(
            from_content_disposition("attachment; filename=\"x.png\"; filename*=UTF-8''%C3%A9t%C3%A9.png").as_deref(),
            Some("été.png")
        );
        assert_eq!(from_content_disposition("attachment; filename=\"a;b\\\".png\"").as_deref(), Some("a;b\".png"));
        assert_eq!(from_content_disposition("attachment").as_deref(), None);
    }

    #[test]
    fn content_disposition_encodes_per_rfc_8187() {
        assert_eq!(
            content_disposition("inline", "été 1.png"),
            "inline; filename=\"_t_ 1.png\"; filename*=UTF-8''%C3%A9t%C3%A9%201.png"
        );
    }
}
