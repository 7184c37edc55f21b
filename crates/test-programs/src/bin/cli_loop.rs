//! Hostile: spins forever without calling the host, so only epoch interruption can stop it.
fn main() {
    println!("looping");
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}
