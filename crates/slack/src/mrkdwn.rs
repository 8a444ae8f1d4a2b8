//! Text for Slack: mrkdwn escaping and clipping to a length, on character
//! (and entity) boundaries.

/// Control characters (newlines in a header) as spaces.
pub(crate) fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// At most `max` characters of `text`, cut on a character boundary and
/// ending in "…" when cut.
pub fn clip(text: &str, max: usize) -> String {
    if text.chars().nth(max).is_none() {
        return text.to_owned();
    }
    if max == 0 {
        return String::new();
    }
    let end = text
        .char_indices()
        .nth(max - 1)
        .map_or(text.len(), |(i, _)| i);
    format!("{}…", &text[..end])
}

/// mrkdwn needs `&`, `<` and `>` escaped (else `<!channel>` in a family name
/// would ping a channel); the escaped text is cut to `max` characters without
/// splitting an entity.
pub fn escape_clip(text: &str, max: usize) -> String {
    fn escaped(c: char) -> Option<&'static str> {
        match c {
            '&' => Some("&amp;"),
            '<' => Some("&lt;"),
            '>' => Some("&gt;"),
            _ => None,
        }
    }
    let width = |c: char| escaped(c).map_or(1, str::len);
    let total: usize = text.chars().map(width).sum();
    let budget = if total <= max {
        usize::MAX
    } else if max == 0 {
        return String::new();
    } else {
        max - 1
    };
    let mut out = String::with_capacity(text.len().min(max * 4));
    let mut used = 0;
    for c in text.chars() {
        let w = width(c);
        if used + w > budget {
            out.push('…');
            return out;
        }
        match escaped(c) {
            Some(entity) => out.push_str(entity),
            None => out.push(c),
        }
        used += w;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::{codecommit, rendered, test_failed};
    use gild_core::announce::Announcement;

    #[test]
    fn mrkdwn_is_escaped_so_names_cannot_ping_or_link() {
        let a = Announcement {
            family: "<!channel> & <https://evil.example|click>".into(),
            ..test_failed()
        };
        let mut payload = rendered(&a, &codecommit());
        // Plain text (the header) is shown as typed: Slack parses no
        // mentions or links in it.
        let header = payload["blocks"][0].take();
        let text = payload.to_string();
        assert!(!text.contains("<!channel>"), "{text}");
        assert!(!text.contains("<https://evil"), "{text}");
        assert!(text.contains("&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;"));
        payload["blocks"][0] = header;
        assert_eq!(
            payload["blocks"][0]["text"]["text"],
            ":x: <!channel> & <https://evil.example|click> FAILED at test"
        );
    }

    #[test]
    fn clipping_keeps_characters_and_entities_whole() {
        assert_eq!(clip("abcdef", 6), "abcdef");
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("ééééé", 3), "éé…");
        assert_eq!(clip("🦀🦀🦀", 2), "🦀…");
        assert_eq!(clip("abc", 0), "");
        assert_eq!(escape_clip("a&b", 7), "a&amp;b");
        assert_eq!(escape_clip("a&b", 6), "a…");
        assert_eq!(escape_clip("a&bc", 7), "a&amp;…");
        assert_eq!(escape_clip("<<<", 9), "&lt;&lt;…");
        assert_eq!(escape_clip("é<", 2), "é…");
    }
}
