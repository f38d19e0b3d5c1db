//! A component that exports `debug` at this host's WIT version but with other types. It is not
//! a debugger: the host must refuse it as `invalid-module` before instantiating it.

wit_bindgen::generate!({
    inline: r#"
        package euphrosyne:recipe@0.1.0;

        world debugger {
            export debug: func(x: u32) -> u32;
        }
    "#,
    world: "debugger",
});

struct Wrong;

impl Guest for Wrong {
    fn debug(x: u32) -> u32 {
        x + 1
    }
}

export!(Wrong);
