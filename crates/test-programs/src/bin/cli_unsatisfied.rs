//! Imports an interface no host provides, so instantiation must fail naming that import.
wit_bindgen::generate!({
    inline: "
        package wharf:test;
        interface missing { nothing: func(); }
        world unsatisfied { import missing; }
    ",
    world: "unsatisfied",
});

fn main() {
    wharf::test::missing::nothing();
}
