// SPDX-License-Identifier: GPL-2.0

//! Runs one shell scenario in a test guest and prints its console: for
//! exploring by hand what a test would see.
//!
//! ```sh
//! export RER_KDIR=$(scripts/build-kernel.sh --print-dir) RER_MODULE=$PWD/rust_emergency_reset.ko \
//!        RER_TEST_MODULES=$PWD/qemu-tests/modules          # from the repository's top
//! cd qemu-tests && cargo run --release --example guest -- q35 \
//!     'insmod /modules/rust_emergency_reset.ko; cat /dev/emergency_reset'
//! MODS="rer_oops_transition" SMP=1 cargo run --release --example guest -- pc '...'
//! ```
//!
//! As everywhere here, modules are loaded only inside the guest.

use qemu_tests::{
    run,
    Guest,
    Inputs, //
};
use std::time::Duration;

fn main() {
    let inputs = Inputs::from_env();
    let mut args = std::env::args().skip(1);
    let (Some(machine), Some(script)) = (args.next(), args.next()) else {
        eprintln!("usage: guest MACHINE SCRIPT   (env: MODS=\"test modules\", SMP=n)");
        std::process::exit(2);
    };
    let mut guest = Guest::new("guest", &inputs, &script)
        .machine(&machine)
        .timeout(Duration::from_secs(30));
    for m in std::env::var("MODS").unwrap_or_default().split_whitespace() {
        guest = guest.with_module(inputs.test_module(m));
    }
    if let Some(n) = std::env::var("SMP").ok().and_then(|n| n.parse().ok()) {
        guest = guest.cpus(n);
    }
    let out = run(&guest, &inputs);
    println!("{}", out.serial);
    println!(
        "ending: {:?} after {:.1} s",
        out.ending,
        out.elapsed.as_secs_f64()
    );
}
