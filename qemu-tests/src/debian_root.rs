// SPDX-License-Identifier: GPL-2.0

//! The Debian 13 build root of `scripts/debian-root.sh`, for the tests that
//! use Debian's own `dkms` and `apt` (`tests/debian.rs`, `tests/deb_install.rs`,
//! `tests/secure_boot.rs`): commands run in it, the lock that serializes
//! those tests ([`dkms_lock`]), the module registered in its DKMS tree for
//! the length of one test ([`DkmsLock::add`], [`installed`]), and
//! [`ThrowawayRoot`], an overlay on it that a test may install into and
//! break without changing the build root or the host's cache.
//!
//! It runs commands on the host and in the build root; it boots nothing and
//! loads no module.

use std::{
    fs::File,
    path::{
        Path,
        PathBuf, //
    },
    process::Command,
};

use crate::inputs::target_dir;

/// The module's version in DKMS (`packaging/dkms.conf`'s `PACKAGE_VERSION`).
pub const VERSION: &str = "0.1.0";

/// Takes the lock on `path` (`flock`), waiting for it.
fn lock(path: &Path) -> File {
    let file = File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    file.lock()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    file
}

/// The tests that change the build root's DKMS tree, or mount it as an
/// overlay's lower layer (which must not change under the overlay), run one at
/// a time across the test processes (`cargo nextest` runs each test in its
/// own), and across clones: the lock is the build root's, beside it in the
/// cache. Held until the returned lock is dropped.
pub fn dkms_lock() -> DkmsLock {
    DkmsLock {
        apt: None,
        _dkms: lock(&PathBuf::from(format!(
            "{}.dkms.lock",
            build_root().display()
        ))),
    }
}

/// [`dkms_lock`]'s lock, and with [`DkmsLock::add`] the module registered in
/// the build root's DKMS tree until it is dropped.
pub struct DkmsLock {
    apt: Option<File>,
    _dkms: File,
}

impl DkmsLock {
    /// Registers the DKMS source tree (`make dkms-source` into the build
    /// root's `/usr/src`) afresh; the build root's path. Until this lock is
    /// dropped, it also holds the build root's apt lock (the one
    /// `scripts/debian-kdir.sh` takes around its `apt-get install`): a kernel
    /// headers package installed there meanwhile, by `make check`'s
    /// background set-up, would run DKMS's autoinstall of this module in the
    /// same tree (seen: a `dkms install` whose build directory vanished
    /// under it; and a headers package left unconfigured when the module
    /// could not build for its kernel). Dropped, the module is unregistered
    /// again, so that no later install in the build root builds it.
    pub fn add(&mut self) -> PathBuf {
        let root = build_root();
        if self.apt.is_none() {
            self.apt = Some(lock(&PathBuf::from(format!("{}.apt.lock", root.display()))));
        }
        ok(Command::new("make")
            .arg("-C")
            .arg(repo())
            .args(["-s", "--no-print-directory", "dkms-source"])
            .arg(format!("DESTDIR={}", root.display())));
        let (rc, log) = in_build_root(&format!(
            "{}; dkms add rust_emergency_reset/{VERSION}",
            unregister()
        ));
        assert_eq!(rc, Some(0), "dkms add:\n{log}");
        root
    }
}

/// The commands that remove the module from the build root's DKMS tree and
/// its modules.
fn unregister() -> String {
    format!(
        "dkms remove rust_emergency_reset/{VERSION} --all >/dev/null 2>&1; \
         rm -rf /lib/modules/*/updates/dkms/rust_emergency_reset.ko*"
    )
}

impl Drop for DkmsLock {
    fn drop(&mut self) {
        if self.apt.is_some() {
            let _ = in_build_root(&format!(
                "{}; rm -rf /usr/src/rust_emergency_reset-{VERSION}",
                unregister()
            ));
        }
    }
}

/// Where DKMS installs the module for `release` in the build root `root`.
pub fn installed(root: &Path, release: &str) -> PathBuf {
    root.join(format!(
        "lib/modules/{release}/updates/dkms/rust_emergency_reset.ko"
    ))
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
        let apt = lock(&PathBuf::from(format!("{}.apt.lock", lower.display())));
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
