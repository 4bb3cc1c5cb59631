//! The `config` target: the TOML config as ggond and `ggon-ctl
//! --check-config` read it: parsed (toml + serde) and validated
//! (`ggon::config::Config::parse`, which opens nothing).
//!
//! Invariants: no panic; a refused file's error names the file it was
//! given, a line of it (when it names one) and has a message; an accepted
//! config parses the same again (validation has no hidden state).

use std::path::Path;

use ggon::config::Config;

/// The name errors are reported under.
const PATH: &str = "/etc/ggon/fuzz.toml";

/// The `config` target.
pub fn config(data: &[u8]) {
    // ggond reads the file with read_to_string: not UTF-8 is an error there.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new(PATH);
    let lines = text.bytes().filter(|&b| b == b'\n').count() + 1;
    match Config::parse(text, path) {
        Ok(cfg) => {
            assert_eq!(cfg.path, path);
            let again = Config::parse(text, path).expect("an accepted config is accepted again");
            assert_eq!(again.services.len(), cfg.services.len());
            for s in &cfg.services {
                assert!(cfg.service(s.name.get_ref()).is_some());
            }
        }
        Err(e) => {
            assert_eq!(e.file, path, "the error names another file");
            if let Some(line) = e.line {
                assert!(
                    (1..=lines).contains(&line),
                    "error at line {line} of a {lines}-line file: {e}"
                );
            }
            assert!(!e.message.is_empty(), "an error without a message");
            let shown = e.to_string();
            assert!(
                shown.starts_with(PATH),
                "the error does not start with the file: {shown}"
            );
        }
    }
}
