//! Module `config` checks time zones against `time_zones.json`, the zones chrono-tz
//! knows (the Rust loader's list), so both sides accept the same zones.
//! `SCALE0_BLESS=1` rewrites the file after a chrono-tz upgrade.

use std::path::Path;

#[test]
fn the_modules_time_zones_are_chrono_tzs() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../modules/config/time_zones.json");
    let mut zones: Vec<&str> = chrono_tz::TZ_VARIANTS.iter().map(|z| z.name()).collect();
    zones.sort_unstable();
    let want = serde_json::to_string(&zones).unwrap() + "\n";
    if std::env::var_os("SCALE0_BLESS").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{} is not chrono-tz's list of zones: run `SCALE0_BLESS=1 cargo test -p scale0-terraform --test time_zones`",
        path.display()
    );
}
