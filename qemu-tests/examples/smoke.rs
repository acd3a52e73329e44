use qemu_tests::*;
fn main() {
    let inputs = Inputs::from_env();
    let machine = std::env::args().nth(1).unwrap();
    let script = std::env::args().nth(2).unwrap();
    let out = run(&Guest::new("smoke", &inputs, &script).machine(&machine).timeout(std::time::Duration::from_secs(40)), &inputs);
    println!("{}", out.serial);
    println!("ENDING {:?} {:?}", out.ending, out.elapsed);
}
