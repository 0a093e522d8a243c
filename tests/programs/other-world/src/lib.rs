//! Test fixture: a component of an unrelated world (it exports `greet` and imports a
//! `clock` interface Cairn does not provide). Loading it must fail with a clear message.

wit_bindgen::generate!({
    inline: r#"
        package example:other@1.0.0;
        interface clock {
            now: func() -> u64;
        }
        world greeter {
            import clock;
            export greet: func(name: string) -> string;
        }
    "#,
    world: "greeter",
});

struct Greeter;

impl Guest for Greeter {
    fn greet(name: String) -> String {
        format!("hello {name} at {}", example::other::clock::now())
    }
}

export!(Greeter);
