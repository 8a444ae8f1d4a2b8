//! How two versions of one package compare, by the package's kind.
//!
//! dpkg versions follow Debian Policy §5.6.12 (`[epoch:]upstream[-revision]`,
//! `~` before everything, letters before other characters, digit runs as
//! numbers), compared by the `debversion` crate so gild orders them as dpkg
//! does rather than by a copy of the algorithm. Windows programs' versions
//! (`8.0.11.34221`) have no such standard; they compare as dotted numbers
//! here.

use std::cmp::Ordering;

use super::Kind;

/// `a` against `b` as versions of a package of `kind`. Total and
/// deterministic for every input, never a panic: a dpkg version that is not
/// a Debian version (which a parsed [`super::Bom`] cannot hold) falls back
/// to the Windows ordering, so callers holding hand-made strings still get
/// an order. Kinds without versions (hotfix, feature) compare the same way.
pub fn compare_versions(kind: Kind, a: &str, b: &str) -> Ordering {
    match kind {
        Kind::Dpkg => match (debian(a), debian(b)) {
            (Some(a), Some(b)) => a.cmp(&b),
            _ => dotted(a, b),
        },
        Kind::Hotfix | Kind::Feature | Kind::Program => dotted(a, b),
    }
}

/// A Debian version, if `text` is one. The crate's comparison slices its
/// parts by character positions, which is only sound for ASCII; its parser
/// admits only ASCII in the upstream version and revision, and an epoch of
/// non-ASCII digits fails to parse as a number, so the checked ASCII here
/// states what the comparison relies on rather than trusting the regex.
pub(super) fn debian(text: &str) -> Option<debversion::Version> {
    if !text.is_ascii() {
        return None;
    }
    text.parse().ok()
}

/// Why `text` is not a Debian version, for the parser's error.
pub(super) fn debian_problem(text: &str) -> Option<String> {
    if !text.is_ascii() {
        return Some("it has a character that is not ASCII".into());
    }
    match text.parse::<debversion::Version>() {
        Ok(_) => None,
        Err(err) => Some(err.to_string()),
    }
}

/// Dotted versions, component by component: the leading digits as a number
/// (of any length: no overflow), then the rest of the component as text. A
/// missing component counts as `0`, so `8.0` and `8.0.0` are equal, as
/// Windows' own four-part versions pad them.
fn dotted(a: &str, b: &str) -> Ordering {
    let mut left = a.split('.');
    let mut right = b.split('.');
    loop {
        let (x, y) = match (left.next(), right.next()) {
            (None, None) => return Ordering::Equal,
            (x, y) => (x.unwrap_or("0"), y.unwrap_or("0")),
        };
        match component(x, y) {
            Ordering::Equal => {}
            other => return other,
        }
    }
}

fn component(a: &str, b: &str) -> Ordering {
    let (a_digits, a_rest) = split_digits(a);
    let (b_digits, b_rest) = split_digits(b);
    number(a_digits, b_digits).then_with(|| a_rest.cmp(b_rest))
}

/// The leading ASCII digits and the rest; both are `str` boundaries because
/// ASCII digits are single bytes.
fn split_digits(s: &str) -> (&str, &str) {
    let end = s.bytes().take_while(u8::is_ascii_digit).count();
    s.split_at(end)
}

/// Digit strings as numbers without parsing them: no leading zeros, the
/// longer is larger, equal lengths compare as text. An empty run is 0.
fn number(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::{Equal, Greater, Less};

    fn dpkg(a: &str, b: &str) -> Ordering {
        compare_versions(Kind::Dpkg, a, b)
    }

    /// The examples of Debian Policy §5.6.12 and dpkg's own ordering rules.
    #[test]
    fn dpkg_orders_as_policy_5_6_12_says() {
        // `~` sorts before everything, even the end of the string.
        assert_eq!(dpkg("1.0~rc1-1", "1.0-1"), Less);
        assert_eq!(dpkg("~~", "~~a"), Less);
        assert_eq!(dpkg("~~a", "~"), Less);
        assert_eq!(dpkg("1~", "1"), Less);
        assert_eq!(dpkg("1.0~~", "1.0~"), Less);
        // Letters sort before non-letters.
        assert_eq!(dpkg("1.0a", "1.0+"), Less);
        assert_eq!(dpkg("1.0a", "1.0."), Less);
        // Digit runs compare as numbers, leading zeros ignored.
        assert_eq!(dpkg("1.10", "1.9"), Greater);
        assert_eq!(dpkg("1.010", "1.10"), Equal);
        assert_eq!(dpkg("2.0.12", "2.0.9"), Greater);
        // The epoch comes first; a missing epoch is 0.
        assert_eq!(dpkg("1:1.0", "2.0"), Greater);
        assert_eq!(dpkg("0:1.0", "1.0"), Equal);
        // The revision is after the last hyphen; a missing one equals 0.
        assert_eq!(dpkg("1.0-1", "1.0-2"), Less);
        assert_eq!(dpkg("1.0-0", "1.0"), Equal);
        // Upstream `1.0-2` against `1.0`: the hyphen outranks the end.
        assert_eq!(dpkg("1.0-2-1", "1.0-10"), Greater);
        // Real Debian 12/13 versions.
        assert_eq!(dpkg("3.0.15-1~deb12u1", "3.0.16-1~deb12u1"), Less);
        assert_eq!(dpkg("3.0.15-1~deb12u1", "3.0.15-1"), Less);
        assert_eq!(dpkg("6.12.9-1", "6.12.12-1"), Less);
        assert_eq!(dpkg("1:9.2p1-2+deb12u3", "1:9.2p1-2+deb12u4"), Less);
        assert_eq!(dpkg("2.36-9+deb12u9", "2.36-9+deb12u10"), Less);
        // Digit runs longer than any integer type.
        assert_eq!(dpkg("1.123456789012345678901234567890", "1.2"), Greater);
    }

    #[test]
    fn windows_versions_compare_as_dotted_numbers() {
        let program = |a, b| compare_versions(Kind::Program, a, b);
        assert_eq!(program("8.0.11.34221", "8.0.12.34567"), Less);
        assert_eq!(program("8.0.11.34221", "8.0.9.99999"), Greater);
        assert_eq!(program("10.0", "9.9"), Greater);
        assert_eq!(program("8.0", "8.0.0.0"), Equal);
        assert_eq!(program("08.00", "8.0"), Equal);
        assert_eq!(program("1.2.3", "1.2.3.1"), Less);
        assert_eq!(program("1.2b", "1.2a"), Greater);
        assert_eq!(program("99999999999999999999999.1", "1.1"), Greater);
        assert_eq!(program("é.1", "é.2"), Less);
    }

    #[test]
    fn a_dpkg_string_that_is_not_a_debian_version_still_orders() {
        assert_eq!(dpkg("é1", "é2"), Less);
        assert_eq!(dpkg("1.0_1", "1.0_1"), Equal);
        assert!(debian_problem("1.0 1").is_some());
        assert!(debian_problem("1:é").is_some());
        assert_eq!(debian_problem("1:2.3-4~deb12u1"), None);
    }
}
