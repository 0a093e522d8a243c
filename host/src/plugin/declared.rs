//! A component's declaration of its operator name and state version
//! ([`cairn_codec::declared`]), read from its bytes without running it.

use cairn_codec::declared::{Declared, SECTION};

use super::LoadError;

/// The declaration in `bytes` (a component), searched at every nesting level; the default
/// (nothing declared) when there is none. `shown` names the file in errors.
pub fn read(shown: &str, bytes: &[u8]) -> Result<Declared, LoadError> {
    let bad = |message: String| LoadError::BadDeclaration {
        path: shown.to_string(),
        message,
    };
    let mut found: Option<Declared> = None;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        // Malformed bytes are wasmtime's to report when it compiles them.
        let Ok(payload) = payload else { break };
        if let wasmparser::Payload::CustomSection(c) = payload
            && c.name() == SECTION
        {
            let d = Declared::parse(c.data()).map_err(bad)?;
            if let Some(prev) = &found
                && *prev != d
            {
                return Err(bad(format!(
                    "two sections disagree ({:?} and {:?})",
                    prev.encode(),
                    d.encode()
                )));
            }
            found = Some(d);
        }
    }
    Ok(found.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest component: the preamble alone.
    const EMPTY: &[u8] = b"\0asm\x0d\0\x01\0";

    #[test]
    fn reads_an_appended_section() {
        assert_eq!(read("x", EMPTY).unwrap(), Declared::default());
        let d = Declared {
            name: Some("counter".into()),
            state_version: Some(3),
        };
        let mut bytes = EMPTY.to_vec();
        bytes.extend(cairn_codec::declared::custom_section(d.encode().as_bytes()));
        assert_eq!(read("x", &bytes).unwrap(), d);
        // The same again agrees; another declaration does not.
        bytes.extend(cairn_codec::declared::custom_section(d.encode().as_bytes()));
        assert_eq!(read("x", &bytes).unwrap(), d);
        bytes.extend(cairn_codec::declared::custom_section(b"state-version=4\n"));
        let e = read("x.wasm", &bytes).unwrap_err().to_string();
        assert!(e.contains("x.wasm") && e.contains("disagree"), "{e}");
    }
}
