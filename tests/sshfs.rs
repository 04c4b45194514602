//! sshfs, the client people mount an SFTP server with: a folder mounted
//! through FUSE (as root, as CI is) and used with ordinary tools — mkdir,
//! cp of new and existing files, cmp, mv, rm, truncate, a big file, and
//! rsync both ways it writes (`--inplace`, and a temp file renamed over the
//! target). sshfs creates a file and looks it up by name at once, so a file
//! being written must be visible while it is open.

use crate::fixtures::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

on_both!(ordinary_tools_work_on_an_sshfs_mount);

/// A mount that is unmounted (lazily, even if busy) on drop.
struct Mount {
    at: PathBuf,
}

impl Drop for Mount {
    fn drop(&mut self) {
        for program in ["fusermount3", "fusermount"] {
            if Command::new(program)
                .args(["-u", "-z"])
                .arg(&self.at)
                .status()
                .is_ok_and(|s| s.success())
            {
                return;
            }
        }
    }
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn sh(script: &str) -> Output {
    run(Command::new("sh").args(["-ec", script]))
}

/// Waits until the file at `disk` (in the served folder, not the mount)
/// holds `want`. FUSE sends a file's CLOSE after `close(2)` has returned,
/// and Glow makes the new content the file's at CLOSE: through the mount a
/// reader sees it at once (requests are answered in order), on the disk a
/// moment later.
fn settles(disk: &Path, want: &[u8]) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let got = std::fs::read(disk).unwrap_or_default();
        if got == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} holds {} bytes, not the {} expected",
            disk.display(),
            got.len(),
            want.len()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn same(local: &Path, disk: &Path) {
    settles(disk, &std::fs::read(local).unwrap());
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[0] ^ seed)
        .collect()
}

async fn ordinary_tools_work_on_an_sshfs_mount(b: Backend) {
    let env = Env::new(b);
    let srv = env.serve();
    let port = srv.sftp_port.unwrap();
    let key = env.path("id_ed25519");
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key));
    env.ok(&[
        "user",
        "key",
        "add",
        "admin",
        key.with_extension("pub").to_str().unwrap(),
    ]);
    let mnt = env.path("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    run(Command::new("sshfs")
        .arg("-p")
        .arg(port.to_string())
        .arg("admin@127.0.0.1:/share")
        .arg(&mnt)
        .args([
            "-o",
            "StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null,BatchMode=yes,LogLevel=ERROR",
            "-o",
        ])
        .arg(format!("IdentityFile={}", key.display())));
    let _mount = Mount { at: mnt.clone() };
    let disk = env.share();
    let local = env.path("local");
    std::fs::create_dir_all(&local).unwrap();
    std::fs::write(local.join("big.bin"), pattern(24 << 20, 1)).unwrap();
    std::fs::write(local.join("small.txt"), b"small\n").unwrap();
    let m = mnt.display();
    let l = local.display();

    // mkdir, cp of a new file (sshfs creates it and looks it up at once).
    sh(&format!(
        "mkdir {m}/dir && cp {l}/big.bin {m}/dir/new.bin && cmp {l}/big.bin {m}/dir/new.bin"
    ));
    same(&local.join("big.bin"), &disk.join("dir/new.bin"));
    // ls shows it with its size.
    let out = sh(&format!("ls -l {m}/dir"));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&(24u64 << 20).to_string()),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // cp over an existing file: its old content becomes a version.
    std::fs::write(local.join("hello2.txt"), b"hello, again\n").unwrap();
    sh(&format!(
        "cp {l}/hello2.txt {m}/hello.txt && cmp {l}/hello2.txt {m}/hello.txt"
    ));
    same(&local.join("hello2.txt"), &disk.join("hello.txt"));
    let versions = env.ok(&["versions", "admin/share/hello.txt"]);
    assert!(!versions.starts_with("no earlier"), "{versions}");

    // mv and rm.
    sh(&format!(
        "mv {m}/dir/new.bin {m}/dir/moved.bin && test ! -e {m}/dir/new.bin"
    ));
    same(&local.join("big.bin"), &disk.join("dir/moved.bin"));
    sh(&format!(
        "cp {l}/small.txt {m}/gone.txt && rm {m}/gone.txt && test ! -e {m}/gone.txt"
    ));
    settles(&disk.join("gone.txt"), b"");
    assert!(!disk.join("gone.txt").exists());

    // truncate, shorter and longer.
    sh(&format!(
        "truncate -s 5 {m}/hello.txt && test \"$(cat {m}/hello.txt)\" = hello"
    ));
    settles(&disk.join("hello.txt"), b"hello");
    sh(&format!(
        "truncate -s 4096 {m}/hello.txt && test $(stat -c %s {m}/hello.txt) = 4096"
    ));
    let mut longer = b"hello".to_vec();
    longer.resize(4096, 0);
    settles(&disk.join("hello.txt"), &longer);

    // A bigger file, and what comes back is what went.
    std::fs::write(local.join("large.bin"), pattern(96 << 20, 7)).unwrap();
    sh(&format!(
        "cp {l}/large.bin {m}/large.bin && cmp {l}/large.bin {m}/large.bin"
    ));
    same(&local.join("large.bin"), &disk.join("large.bin"));

    // rsync, writing in place, then the usual way (a temp file renamed
    // over the target). `-I`: SFTP times are whole seconds, so a file
    // changed within the second of the copy before has the same size and
    // time, and rsync's quick check would skip it.
    let mut changed = pattern(24 << 20, 1);
    changed[5 << 20..(5 << 20) + 4096].fill(0xAB);
    std::fs::write(local.join("big.bin"), &changed).unwrap();
    sh(&format!(
        "rsync -I --inplace --no-whole-file {l}/big.bin {m}/dir/moved.bin && cmp {l}/big.bin {m}/dir/moved.bin"
    ));
    same(&local.join("big.bin"), &disk.join("dir/moved.bin"));
    changed[9 << 20..(9 << 20) + 100].fill(0xCD);
    std::fs::write(local.join("big.bin"), &changed).unwrap();
    sh(&format!(
        "rsync -I {l}/big.bin {l}/small.txt {m}/dir/ && cmp {l}/big.bin {m}/dir/big.bin && cmp {l}/small.txt {m}/dir/small.txt"
    ));
    same(&local.join("big.bin"), &disk.join("dir/big.bin"));
    sh(&format!(
        "rsync -I {l}/big.bin {m}/dir/moved.bin && cmp {l}/big.bin {m}/dir/moved.bin"
    ));
    same(&local.join("big.bin"), &disk.join("dir/moved.bin"));
    // No temp file of Glow's or rsync's is left behind.
    let names: Vec<String> = std::fs::read_dir(disk.join("dir"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        names.iter().all(|n| !n.starts_with('.')),
        "left behind: {names:?}"
    );
    // The catalog agrees with the disk.
    let report = env.ok(&["folder", "verify", "admin/share"]);
    assert!(
        report.trim().is_empty() || report.contains("agree") || report.contains("in sync"),
        "{report}"
    );
}
