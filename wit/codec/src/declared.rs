//! What a component declares about itself without being run: its operator name and its state
//! version, in a custom section named [`SECTION`] (at any nesting level of the component).
//!
//! The payload is UTF-8 lines `field=value`: `name=<operator name>` and
//! `state-version=<u32>`, each optional, e.g. `name=counter\nstate-version=2\n`. cairn-sdk
//! writes it from `export!(Op, name = "counter", state_version = 2)`; `cairn build` appends it
//! to Python, JavaScript and C components from `cairn.toml` ([`custom_section`]). A component
//! that declares no state version has version 0, as has every checkpoint written before state
//! versions existed, so 0 → n migrates.

/// The custom section's name.
pub const SECTION: &str = "cairn-operator";

/// The longest name accepted, in bytes.
pub const MAX_NAME: usize = 128;

/// A component's declaration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Declared {
    /// The operator's name: state is keyed by it unless the pipeline names the operator.
    pub name: Option<String>,
    /// The version of the state layout the component reads and writes.
    pub state_version: Option<u32>,
}

/// Why a name cannot be declared, if it cannot: empty, longer than [`MAX_NAME`], or holding
/// whitespace, a control character, `=` or `,`.
pub fn name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("it is empty")
    } else if name.len() > MAX_NAME {
        Some("it is longer than 128 bytes")
    } else if name
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '=' || c == ',')
    {
        Some("it holds whitespace, a control character, `=` or `,`")
    } else {
        None
    }
}

impl Declared {
    /// The section's payload.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Some(n) = &self.name {
            out.push_str("name=");
            out.push_str(n);
            out.push('\n');
        }
        if let Some(v) = self.state_version {
            out.push_str("state-version=");
            out.push_str(&v.to_string());
            out.push('\n');
        }
        out
    }

    /// Read a section's payload; an error says which line is wrong and why.
    pub fn parse(payload: &[u8]) -> Result<Self, String> {
        let text = std::str::from_utf8(payload).map_err(|_| "the declaration is not UTF-8".to_string())?;
        let mut d = Declared::default();
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let bad = |why: &str| format!("line {} of the declaration ({line:?}): {why}", i + 1);
            let (field, value) = line
                .split_once('=')
                .ok_or_else(|| bad("expected `field=value`"))?;
            match field.trim() {
                "name" => {
                    let name = value.trim();
                    if let Some(why) = name_problem(name) {
                        return Err(bad(&format!("not a valid operator name: {why}")));
                    }
                    d.name = Some(name.to_string());
                }
                "state-version" => {
                    let v = value
                        .trim()
                        .parse::<u32>()
                        .map_err(|_| bad("the state version is not a number from 0 to 4294967295"))?;
                    d.state_version = Some(v);
                }
                // Fields of later versions are skipped, so an older host still reads the rest.
                _ => {}
            }
        }
        Ok(d)
    }

    /// The state version (0 when none is declared).
    pub fn version(&self) -> u32 {
        self.state_version.unwrap_or(0)
    }
}

fn leb128(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// The bytes of a custom section [`SECTION`] holding `payload`; appended to a component (or
/// module) it is a valid section of it.
pub fn custom_section(payload: &[u8]) -> Vec<u8> {
    let mut name = Vec::new();
    leb128(SECTION.len(), &mut name);
    name.extend_from_slice(SECTION.as_bytes());
    let mut out = vec![0u8];
    leb128(name.len() + payload.len(), &mut out);
    out.extend_from_slice(&name);
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_and_parses() {
        let d = Declared {
            name: Some("counter".into()),
            state_version: Some(2),
        };
        assert_eq!(d.encode(), "name=counter\nstate-version=2\n");
        assert_eq!(Declared::parse(d.encode().as_bytes()), Ok(d));
        assert_eq!(Declared::parse(b""), Ok(Declared::default()));
        assert_eq!(Declared::parse(b"later=1\nstate-version=7").unwrap().version(), 7);
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        let e = Declared::parse(b"name=a b\n").unwrap_err();
        assert!(e.contains("line 1") && e.contains("whitespace"), "{e}");
        let e = Declared::parse(b"name=x\nstate-version=-1\n").unwrap_err();
        assert!(e.contains("line 2") && e.contains("number"), "{e}");
        assert!(Declared::parse(b"oops\n").unwrap_err().contains("field=value"));
        assert!(Declared::parse(&[0xff]).is_err());
    }

    #[test]
    fn builds_a_custom_section() {
        let s = custom_section(b"name=x\n");
        // id 0, size, name length, name, payload
        assert_eq!(s[0], 0);
        assert_eq!(s[1] as usize, 1 + SECTION.len() + 7);
        assert_eq!(s[2] as usize, SECTION.len());
        assert_eq!(&s[3..3 + SECTION.len()], SECTION.as_bytes());
        assert!(s.ends_with(b"name=x\n"));
        let long = custom_section(&[b'a'; 300]);
        assert_eq!(&long[1..3], &[(315 & 0x7f) as u8 | 0x80, (315 >> 7) as u8]);
    }
}
