//! A well-behaved command. `args` prints its arguments one per line, `stdin` copies stdin to
//! stdout, `stderr MSG` writes MSG to stderr, `exit N` exits with code N. Commands chain.
use std::io::{Read, Write};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut rest = args.iter().skip(1);
    if args.len() == 1 {
        println!("hello from a wharf guest");
    }
    while let Some(cmd) = rest.next() {
        match cmd.as_str() {
            "args" => args.iter().for_each(|a| println!("{a}")),
            "stdin" => {
                let mut input = Vec::new();
                std::io::stdin().read_to_end(&mut input).unwrap();
                std::io::stdout().write_all(&input).unwrap();
            }
            "stderr" => eprintln!("{}", rest.next().expect("stderr MSG")),
            "exit" => std::process::exit(rest.next().expect("exit N").parse().unwrap()),
            _ => {}
        }
    }
}
