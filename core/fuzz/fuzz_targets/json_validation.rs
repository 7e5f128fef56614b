//! The enrichment's validating scanner accepts exactly what serde_json accepts (as UTF-8 text):
//! the fast path may only skip serde when it would reach the same verdict.
#![no_main]

use libfuzzer_sys::fuzz_target;
use traptor_core::matching::json_skim::is_valid_json;

fuzz_target!(|data: &[u8]| {
    let serde_accepts = std::str::from_utf8(data).is_ok()
        && serde_json::from_slice::<serde::de::IgnoredAny>(data).is_ok();
    assert_eq!(
        is_valid_json(data),
        serde_accepts,
        "scanner and serde disagree on {:?}",
        String::from_utf8_lossy(data)
    );
});
