use qemu_tests::*;
fn main() {
    let inputs = Inputs::from_env();
    let machine = std::env::args().nth(1).unwrap();
    let script = std::env::args().nth(2).unwrap();
    let mut guest = Guest::new("smoke", &inputs, &script)
        .machine(&machine)
        .timeout(std::time::Duration::from_secs(15));
    for m in std::env::var("MODS").unwrap_or_default().split_whitespace() {
        guest = guest.with_module(inputs.test_module(m));
    }
    if let Ok(n) = std::env::var("SMP") {
        guest.cpus = n.parse().unwrap();
    }
    let out = run(&guest, &inputs);
    println!("{}", out.serial);
    println!("ENDING {:?} {:?}", out.ending, out.elapsed);
}
