//! The statement-effects classifier on arbitrary bytes: it never panics, never reads past its
//! window, and a leading comment or whitespace changes nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lockroute::route::effects::{SCAN_LIMIT, effects};

fuzz_target!(|data: &[u8]| {
    let found = effects(data);
    assert_eq!(effects(&data[..data.len().min(SCAN_LIMIT)]), found);
    if data.len() + 16 <= SCAN_LIMIT {
        let mut commented = b"/* c */ \n ".to_vec();
        commented.extend_from_slice(data);
        assert_eq!(
            effects(&commented),
            found,
            "a leading comment changed the effects"
        );
    }
    // A pin reason is a state-creating effect.
    if found.pin().is_some() {
        assert!(found.changes_session());
    }
});
