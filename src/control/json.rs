//! `GET /config`: the effective runtime settings as JSON, each with where it came from
//! (`default`, `env`, `flag`, `control-file`). Hand-written: a few fields, and no serde in the
//! dependency tree. Holds no URL and no password.

use std::fmt::Write;
use std::path::Path;

use crate::config::control::Setting;

use super::Live;

/// `last_error`: why the last reload was refused, if it was; the settings shown are then the
/// ones still serving from before.
pub(super) fn render(live: &Live, control_file: Option<&Path>, last_error: Option<&str>) -> String {
    let e = &live.effective;
    let mut out = String::from("{");
    let _ = write!(
        out,
        "\"mode\":{},\"mode_source\":{},",
        string(live.mode.as_str()),
        string(e.mode_source.as_str())
    );
    let file = control_file.map(|p| string(&p.display().to_string()));
    let _ = write!(
        out,
        "\"control_file\":{},",
        file.as_deref().unwrap_or("null")
    );
    let error = last_error.map(string);
    let _ = write!(
        out,
        "\"last_reload_error\":{},",
        error.as_deref().unwrap_or("null")
    );
    out.push_str("\"settings\":{");
    let presets: Vec<String> = e.presets.value.iter().map(|p| string(p)).collect();
    let fields = [
        ("mode", setting(&e.mode, string(e.mode.value.as_str()))),
        ("pin", setting(&e.pin, string(e.pin.value.as_str()))),
        (
            "presets",
            setting(&e.presets, format!("[{}]", presets.join(","))),
        ),
        (
            "lock_patterns",
            format!(
                "{{\"count\":{},\"source\":{}}}",
                e.lock_patterns.value.len(),
                string(e.lock_patterns.origin.as_str())
            ),
        ),
    ];
    let fields: Vec<String> = fields
        .iter()
        .map(|(name, value)| format!("{}:{value}", string(name)))
        .collect();
    out.push_str(&fields.join(","));
    out.push_str("}}");
    out
}

fn setting<T>(setting: &Setting<T>, value: String) -> String {
    format!(
        "{{\"value\":{value},\"source\":{}}}",
        string(setting.origin.as_str())
    )
}

/// A JSON string literal (RFC 8259 §7).
fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::control::{Inputs, Origin, Setting};
    use crate::config::{Mode, ModeSource};

    #[test]
    fn string_escapes_quotes_backslashes_and_control_characters() {
        assert_eq!(string("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\u000ad\\u0001\"");
        assert_eq!(string("plain"), "\"plain\"");
    }

    #[test]
    fn render_names_each_setting_with_its_source() {
        let inputs = Inputs {
            passthrough: Some(Setting {
                value: true,
                origin: Origin::ControlFile,
            }),
            presets: Some(Setting {
                value: vec!["gbrain".to_owned()],
                origin: Origin::Env,
            }),
            ..Inputs::default()
        };
        let effective = inputs.resolve();
        assert_eq!(effective.mode_source, ModeSource::LockroutePassthrough);
        let live = Live::build("lockroute:direct", effective).expect("defaults compile");
        assert_eq!(live.mode, Mode::Passthrough);
        let json = render(
            &live,
            Some(Path::new("/etc/lockroute/control.env")),
            Some("line 1: \"X\""),
        );
        assert_eq!(
            json,
            "{\"mode\":\"passthrough\",\"mode_source\":\"LOCKROUTE_PASSTHROUGH\",\
             \"control_file\":\"/etc/lockroute/control.env\",\"last_reload_error\":\"line 1: \\\"X\\\"\",\
             \"settings\":{\"mode\":{\"value\":\"passthrough\",\"source\":\"control-file\"},\
             \"pin\":{\"value\":\"auto\",\"source\":\"default\"},\
             \"presets\":{\"value\":[\"gbrain\"],\"source\":\"env\"},\
             \"lock_patterns\":{\"count\":0,\"source\":\"default\"}}}"
        );
    }
}
