//! ACL file parser: never panics; a refusal is one line naming a line of the file; an
//! accepted file renders to a canonical form that parses back to the same rules; matching
//! the file's grants against names from the input never panics either.
#![no_main]
use gearman_core::acl::{Acl, Identity, Permission};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // The first line also serves as a function name to match against the grants.
    let name = data.split(|&b| b == b'\n').next().unwrap_or_default();
    match Acl::parse_bytes(data) {
        Err(e) => {
            let shown = e.to_string();
            assert!(!shown.contains('\n') && !shown.contains('\r'), "{shown:?}");
            assert!(e.line <= data.len() + 1);
        }
        Ok(acl) => {
            let text = acl.to_string();
            assert_eq!(Acl::parse(&text).as_ref(), Ok(&acl), "{text:?}");
            let who = [
                Identity::Anonymous,
                Identity::Unix { uid: 0 },
                Identity::certificate(
                    Some(String::from_utf8_lossy(name).into_owned()),
                    vec![String::from_utf8_lossy(name).into_owned()],
                ),
            ];
            for identity in &who {
                let grants = acl.grants_for(identity);
                for p in [
                    Permission::Submit,
                    Permission::Register,
                    Permission::AdminRead,
                    Permission::AdminWrite,
                ] {
                    let _ = grants.allows(p, name);
                }
            }
        }
    }
});
