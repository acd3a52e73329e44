// SPDX-License-Identifier: GPL-2.0

//! The Debian 13 build root of `scripts/debian-root.sh`, for the tests that
//! use Debian's own `dkms` and `apt` (`tests/debian.rs`, `tests/deb_install.rs`):
//! commands run in it, the lock that serializes those tests, and
//! [`ThrowawayRoot`], an overlay on it that a test may install into and
//! break without changing the build root or the host's cache.

use std::{
    fs::File,
    path::{
        Path,
        PathBuf, //
    },
    process::Command,
};

use crate::inputs::target_dir;

/// The tests that change the build root's DKMS tree, or mount it as an
/// overlay's lower layer (which must not change under the overlay), run one at
/// a time across the test processes (`cargo nextest` runs each test in its
/// own). Held until the returned file is dropped.
pub fn dkms_lock() -> File {
    let dir = target_dir().join("tmp");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("dkms.lock");
    let file = File::create(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    file.lock()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    file
}

/// The clone: `qemu-tests/..`.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs a command: its exit status and its stdout and stderr together.
pub fn output(cmd: &mut Command) -> (Option<i32>, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// Runs a command that must succeed; its output.
pub fn ok(cmd: &mut Command) -> String {
    let (rc, text) = output(cmd);
    assert_eq!(rc, Some(0), "{cmd:?} failed:\n{text}");
    text
}

/// The Debian 13 build root (made by `make check` before the tests run).
pub fn build_root() -> PathBuf {
    let dir = ok(Command::new(repo().join("scripts/debian-root.sh")).arg("--print-dir"));
    PathBuf::from(dir.trim())
}

/// Runs a shell script inside the build root; its exit status and output.
pub fn in_build_root(script: &str) -> (Option<i32>, String) {
    output(Command::new(repo().join("scripts/debian-root.sh")).args(["--run", "sh", "-c", script]))
}

/// A Debian 13 system to install packages into and break: an overlayfs whose
/// lower layer is the build root, read only, and whose upper layer is a
/// directory of its own under `target/throwaway/`, removed when it is made
/// again. Each [`ThrowawayRoot::run`] mounts the overlay in a mount namespace
/// of its own (gone with the command), with /proc, /dev and the directory of
/// the packages `make deb` built (read only). Nothing of the host's cache is
/// mounted: the KDIRs the system is given are copies in its own
/// `/var/cache/rust_emergency_reset`, so that a purge inside deletes those
/// copies and nothing else.
///
/// While it exists it holds the build root's apt lock (`debian-kdir.sh`'s),
/// so that no apt of the suite's set-up changes the lower layer under it;
/// [`dkms_lock`] keeps the tests that change the build root's DKMS tree away.
pub struct ThrowawayRoot {
    dir: PathBuf,
    lower: PathBuf,
    _apt: File,
}

impl ThrowawayRoot {
    /// A fresh one: the build root as it is, with a copy of the KDIR that
    /// `scripts/debian-kdir.sh` made for each of `releases` in the host's
    /// cache (made first if missing), where DKMS's build looks
    /// (`/var/cache/rust_emergency_reset`): the module then builds in
    /// seconds rather than the minutes the Rust metadata takes. (The build
    /// root holds the packages each KDIR was made with, so its key matches.)
    pub fn new(name: &str, releases: &[String]) -> ThrowawayRoot {
        let dir = target_dir().join("throwaway").join(name);
        if dir.exists() {
            ok(Command::new("rm").arg("-rf").arg(&dir));
        }
        for d in ["upper", "work", "merged"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        // Made (or waited for) before the lock: it runs apt in the build root.
        let made: Vec<PathBuf> = releases
            .iter()
            .map(|r| {
                let kdir = ok(Command::new(repo().join("scripts/debian-kdir.sh")).arg(r));
                Path::new(kdir.trim()).parent().unwrap().to_path_buf()
            })
            .collect();
        let lower = build_root();
        let lock = PathBuf::from(format!("{}.apt.lock", lower.display()));
        let apt = File::create(&lock).unwrap_or_else(|e| panic!("{}: {e}", lock.display()));
        apt.lock()
            .unwrap_or_else(|e| panic!("{}: {e}", lock.display()));
        let cache = dir.join("upper/var/cache/rust_emergency_reset");
        std::fs::create_dir_all(&cache).unwrap();
        for (release, made) in releases.iter().zip(made) {
            let name = made.file_name().unwrap();
            ok(Command::new("cp")
                .arg("-a")
                .arg(&made)
                .arg(cache.join(name)));
            // Its Makefile names the directory it is in (debian-kdir.sh's
            // KBUILD_OUTPUT=): kbuild builds an external module into the
            // KDIR itself when it is entered by another path. As
            // debian-kdir.sh would have made it there.
            let makefile = cache.join(name).join("kdir/Makefile");
            let text = std::fs::read_to_string(&makefile).unwrap();
            let inside = Path::new("/var/cache/rust_emergency_reset")
                .join(name)
                .join("kdir");
            let from = format!("KBUILD_OUTPUT={}\n", made.join("kdir").display());
            assert!(text.contains(&from), "{}: {text}", makefile.display());
            let to = format!("KBUILD_OUTPUT={}\n", inside.display());
            std::fs::write(&makefile, text.replace(&from, &to)).unwrap();
            std::os::unix::fs::symlink(name, cache.join(format!("debian-kdir-{release}"))).unwrap();
        }
        ThrowawayRoot {
            dir,
            lower,
            _apt: apt,
        }
    }

    /// The copy of `release`'s KDIR the system was given, as its upper layer
    /// holds it.
    pub fn kdir(&self, release: &str) -> PathBuf {
        let link = self.written(&format!(
            "var/cache/rust_emergency_reset/debian-kdir-{release}"
        ));
        let name = std::fs::read_link(&link).unwrap_or_else(|e| panic!("{}: {e}", link.display()));
        link.parent().unwrap().join(name).join("kdir")
    }

    /// The packages' directory, as mounted inside.
    pub fn debs() -> PathBuf {
        target_dir().join("deb")
    }

    /// A path of the system, as its upper layer holds it: what the system
    /// wrote or changed there, and only that (Debian 13 has merged /usr: give
    /// `usr/lib/...`, not `lib/...`).
    pub fn written(&self, path: &str) -> PathBuf {
        self.dir.join("upper").join(path)
    }

    /// Runs a shell script inside, as root, with apt non-interactive; its exit
    /// status and output.
    pub fn run(&self, script: &str) -> (Option<i32>, String) {
        let mount = r#"
            lower=$1 dir=$2 debs=$3 script=$4
            m=$dir/merged
            mount -t overlay overlay -o "lowerdir=$lower,upperdir=$dir/upper,workdir=$dir/work" "$m"
            mount -t proc proc "$m/proc"
            mount --bind /dev "$m/dev"
            mkdir -p "$m$debs"
            mount --bind "$debs" "$m$debs"
            mount -o remount,bind,ro "$m$debs"
            cp /etc/resolv.conf "$m/etc/resolv.conf"
            exec chroot "$m" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin \
                LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive sh -c "$script"
        "#;
        output(
            Command::new("unshare")
                .args([
                    "--mount",
                    "--propagation",
                    "private",
                    "--",
                    "sh",
                    "-ec",
                    mount,
                    "sh",
                ])
                .arg(&self.lower)
                .arg(&self.dir)
                .arg(Self::debs())
                .arg(script),
        )
    }

    /// Runs a script that must succeed; its output.
    pub fn ok(&self, script: &str) -> String {
        let (rc, out) = self.run(script);
        assert_eq!(rc, Some(0), "{script}:\n{out}");
        out
    }
}
