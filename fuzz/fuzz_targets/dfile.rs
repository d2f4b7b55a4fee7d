//! `DfileRules::dfile_for` on arbitrary bytes for every version with `-d`,
//! `-s`, `-p`: the checks of `src/dfile/properties.rs`, included as they are.
#![no_main]

use libfuzzer_sys::fuzz_target;
use precompyle::dfile::{Dfile, DfileRules, EMPTY_JOIN_ERROR};

#[path = "../../src/dfile/properties.rs"]
mod properties;

fuzz_target!(|data: &[u8]| {
    // [minor][flags][fullname NUL dir_arg NUL ddir NUL stripdir NUL prependdir];
    // flag bit n: the (n+1)th field after fullname is given.
    let [minor, flags, rest @ ..] = data else {
        return;
    };
    let mut fields = rest.splitn(5, |&b| b == 0);
    let fullname = fields.next().unwrap_or_default();
    let mut given = (0..4).map(|bit| {
        let field = fields.next().unwrap_or_default();
        (flags >> bit & 1 == 1).then(|| field.to_vec())
    });
    let dir_arg = given.next().flatten();
    let ddir = given.next().flatten();
    let (stripdir, prependdir) = (given.next().flatten(), given.next().flatten());
    let rules = properties::cli_rules(8 + u32::from(minor % 7), ddir, stripdir, prependdir);
    if let Err(broken) = properties::check_dfile(&rules, fullname, dir_arg.as_deref()) {
        panic!("{broken}");
    }
});
