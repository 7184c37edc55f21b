//! Hostile: recurses without bound, so the guest stack overflows.
#[allow(unconditional_recursion)]
fn depth(n: u64, pad: &mut [u8; 256]) -> u64 {
    pad[(n % 256) as usize] = n as u8;
    let mut next = *pad;
    1 + depth(std::hint::black_box(n + 1), std::hint::black_box(&mut next))
}

fn main() {
    println!("recursing");
    println!("{}", depth(0, &mut [0; 256]));
}
