#![no_main]
//! An MCP guest (`wharf mcp`) exporting a resource: `counter`, with a constructor, methods, a
//! method returning a new resource and a static function taking `borrow` and `own` handles.
//! World `wharf:guests/mcp-counter`.
use std::cell::Cell;

wit_bindgen::generate!({
    path: "wit",
    world: "wharf:guests/mcp-counter",
    generate_all,
});

use exports::wharf::guests::counters::{Counter, CounterBorrow, Guest, GuestCounter};

struct McpCounter;

struct MyCounter {
    value: Cell<u64>,
}

impl Guest for McpCounter {
    type Counter = MyCounter;

    fn sum(counters: Vec<CounterBorrow<'_>>) -> u64 {
        counters.iter().map(|c| c.get::<MyCounter>().value.get()).fold(0, u64::wrapping_add)
    }
}

impl GuestCounter for MyCounter {
    fn new(start: u64) -> Self {
        MyCounter { value: Cell::new(start) }
    }

    fn increment(&self, by: u32) -> u64 {
        self.value.set(self.value.get().wrapping_add(u64::from(by)));
        self.value.get()
    }

    fn get(&self) -> u64 {
        self.value.get()
    }

    fn fork(&self) -> Counter {
        Counter::new(MyCounter { value: Cell::new(self.value.get()) })
    }

    fn merge(into: CounterBorrow<'_>, other: Counter) -> u64 {
        let into = into.get::<MyCounter>();
        let other = other.into_inner::<MyCounter>();
        into.value.set(into.value.get().wrapping_add(other.value.get()));
        into.value.get()
    }
}

export!(McpCounter);
