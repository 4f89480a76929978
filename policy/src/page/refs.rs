//! Character references for the fast scanner: the common ones decoded exactly, the rest
//! declined so html5gum (with the full WHATWG table) handles the page.

/// The page uses something the fast scanner does not model; use the full tokenizer. (It is
/// declared here, below the scanner, because a character reference is where the scanner most
/// often meets one.)
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Bail;

/// A step of the fast scanner, which may give up.
pub(crate) type Scan<T> = Result<T, Bail>;

/// Named references this scanner decodes; every one needs its `;`. Anything else bails.
const NAMED: &[(&str, char)] = &[
    ("amp", '&'),
    ("lt", '<'),
    ("gt", '>'),
    ("quot", '"'),
    ("apos", '\''),
    ("nbsp", '\u{a0}'),
    ("sol", '/'),
    ("colon", ':'),
    ("num", '#'),
    ("period", '.'),
    ("lowbar", '_'),
    ("equals", '='),
    ("quest", '?'),
    ("excl", '!'),
    ("percnt", '%'),
    ("plus", '+'),
    ("commat", '@'),
    ("lpar", '('),
    ("rpar", ')'),
    ("comma", ','),
    ("semi", ';'),
    ("dollar", '$'),
    ("ast", '*'),
    ("lsqb", '['),
    ("rsqb", ']'),
    ("lcub", '{'),
    ("rcub", '}'),
    ("verbar", '|'),
    ("grave", '`'),
    ("Tab", '\t'),
    ("NewLine", '\n'),
];

/// The character a named reference this scanner decodes stands for.
fn named(name: &str) -> Option<char> {
    // The ones index pages use (`>=3.8`, `&amp;` in queries) without a walk through the table.
    match name {
        "gt" => Some('>'),
        "lt" => Some('<'),
        "amp" => Some('&'),
        _ => NAMED.iter().find(|(k, _)| *k == name).map(|(_, c)| *c),
    }
}

/// Decodes character references in `raw` into `out`, or bails where the exact WHATWG result
/// would need the full named-reference table or its error recoveries.
pub(crate) fn decode_refs(raw: &str, _in_attribute: bool, out: &mut String) -> Scan<()> {
    let mut rest = raw;
    while let Some(amp) = memchr::memchr(b'&', rest.as_bytes()) {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let bytes = after.as_bytes();
        match bytes.first() {
            Some(b'#') => {
                let (hex, digits) = match bytes.get(1) {
                    Some(b'x' | b'X') => (true, &after[2..]),
                    _ => (false, &after[1..]),
                };
                let n = digits
                    .bytes()
                    .take_while(|c| {
                        if hex {
                            c.is_ascii_hexdigit()
                        } else {
                            c.is_ascii_digit()
                        }
                    })
                    .count();
                if n == 0 || n > 7 || digits.as_bytes().get(n) != Some(&b';') {
                    return Err(Bail);
                }
                let value = u32::from_str_radix(&digits[..n], if hex { 16 } else { 10 })
                    .map_err(|_| Bail)?;
                // Zero, C0/C1 controls, surrogates and out-of-range values have special
                // replacements; leave them to the full tokenizer.
                let ch = char::from_u32(value)
                    .filter(|c| !c.is_control() && *c != '\0')
                    .ok_or(Bail)?;
                out.push(ch);
                rest = &digits[n + 1..];
            }
            Some(c) if c.is_ascii_alphanumeric() => {
                let n = bytes
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .count();
                let name = &after[..n];
                if bytes.get(n) != Some(&b';') {
                    return Err(Bail);
                }
                let ch = named(name).ok_or(Bail)?;
                out.push(ch);
                rest = &after[n + 1..];
            }
            // Not a reference: the '&' is literal.
            _ => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(())
}
