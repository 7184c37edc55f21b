//! A `wasi:config` guest. `config_get [KEY...]`: prints every granted `KEY=VALUE` (get-all), then
//! `KEY -> VALUE` or `KEY -> <none>` for each argument (get), after checking that every linked
//! version of the interface answers the same.
wit_bindgen::generate!({
    path: "wit",
    world: "wharf:guests/config-guest",
    generate_all,
});

use wasi::config0_2_0_draft::runtime;
use wasi::config0_2_0_draft::store as draft;
use wasi::config0_2_0_draft_2024_09_27::store as dated;
use wasi::config0_2_0_rc_1::store;

fn main() {
    let all = store::get_all().expect("get-all");
    assert_eq!(dated::get_all().expect("get-all (2024-09-27)"), all);
    assert_eq!(draft::get_all().expect("get-all (draft)"), all);
    assert_eq!(runtime::get_all().expect("get-all (runtime)"), all);
    for (key, value) in &all {
        println!("{key}={value}");
    }
    for key in std::env::args().skip(1) {
        let value = store::get(&key).expect("get");
        assert_eq!(dated::get(&key).expect("get (2024-09-27)"), value);
        assert_eq!(draft::get(&key).expect("get (draft)"), value);
        assert_eq!(runtime::get(&key).expect("get (runtime)"), value);
        println!("{key} -> {}", value.as_deref().unwrap_or("<none>"));
    }
}
