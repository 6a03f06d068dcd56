//! `tar_directory` (deterministic, keeps links, devices, owners, xattrs,
//! never follows symlinks) and the overlay upper-dir conversions, checked
//! against a real overlayfs mount: changes made through the mount, the
//! upper dir turned into a layer, and that layer mounted over the same
//! lower dir must show exactly the tree the first mount showed.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use barge_image::diff::{
    changes_from_overlay_upper, diff_from_overlay_upper, tar_directory, ChangeKind, LowerLayers,
};
use barge_image::layer::{self, UnpackOptions};

/// One line per entry: path, type, mode, owner, content or link target.
fn tree(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for n in names {
            let p = dir.join(&n);
            let m = fs::symlink_metadata(&p).unwrap();
            let what = if m.file_type().is_symlink() {
                format!("-> {}", fs::read_link(&p).unwrap().display())
            } else if m.is_file() {
                String::from_utf8_lossy(&fs::read(&p).unwrap()).into_owned()
            } else {
                format!("rdev {}", m.rdev())
            };
            out.push(format!(
                "{} {:o} {}:{} {}",
                p.strip_prefix(root).unwrap().display(),
                m.mode(),
                m.uid(),
                m.gid(),
                what
            ));
            if m.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out
}

fn entries(tar_data: &[u8]) -> Vec<(String, tar::EntryType, String)> {
    let mut ar = tar::Archive::new(tar_data);
    ar.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let link = e
                .link_name()
                .unwrap()
                .map(|l| l.display().to_string())
                .unwrap_or_default();
            (
                e.path().unwrap().display().to_string(),
                e.header().entry_type(),
                link,
            )
        })
        .collect()
}

fn set_user_xattr(path: &Path) -> bool {
    rustix::fs::lsetxattr(
        path,
        "user.barge",
        b"value",
        rustix::fs::XattrFlags::empty(),
    )
    .is_ok()
}

#[test]
fn tar_directory_is_deterministic_and_faithful() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(src.join("a/deep")).unwrap();
    fs::write(src.join("a/file"), b"content\n").unwrap();
    fs::set_permissions(src.join("a/file"), fs::Permissions::from_mode(0o640)).unwrap();
    fs::hard_link(src.join("a/file"), src.join("a/hard")).unwrap();
    fs::write(src.join("suid"), b"#!/bin/sh\n").unwrap();
    fs::set_permissions(src.join("suid"), fs::Permissions::from_mode(0o4755)).unwrap();
    symlink("/etc/passwd", src.join("abs-link")).unwrap();
    symlink("../nowhere", src.join("a/dangling")).unwrap();
    // A symlinked directory must be archived as a link, not descended.
    symlink("/etc", src.join("etc-link")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        src.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    let long = "l".repeat(120);
    fs::write(src.join("a/deep").join(&long), b"long name").unwrap();
    fs::set_permissions(src.join("a"), fs::Permissions::from_mode(0o750)).unwrap();
    let xattrs = set_user_xattr(&src.join("a/file"));
    if common::is_root() {
        rustix::fs::chown(
            src.join("a/file"),
            Some(rustix::fs::Uid::from_raw(1234)),
            Some(rustix::fs::Gid::from_raw(5678)),
        )
        .unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            src.join("null"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0o666),
            rustix::fs::makedev(1, 3),
        )
        .unwrap();
    }

    let one = tar_directory(&src, Vec::new()).unwrap();
    let two = tar_directory(&src, Vec::new()).unwrap();
    assert_eq!(one, two, "tar_directory is not deterministic");
    let list = entries(&one);
    let names: Vec<&str> = list.iter().map(|(n, _, _)| n.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted);
    assert!(
        !names.iter().any(|n| n.starts_with("etc-link/")),
        "{names:?}"
    );
    let find = |n: &str| list.iter().find(|(name, _, _)| name == n).unwrap().clone();
    assert_eq!(find("a/hard").1, tar::EntryType::Link);
    assert_eq!(find("a/hard").2, "a/file");
    assert_eq!(find("abs-link").1, tar::EntryType::Symlink);
    assert_eq!(find("abs-link").2, "/etc/passwd");
    assert_eq!(find("etc-link").1, tar::EntryType::Symlink);
    assert_eq!(find("fifo").1, tar::EntryType::Fifo);
    assert_eq!(find("a/").1, tar::EntryType::Directory);

    // Unpacked again, the tree is the same.
    let dst = tmp.path().join("dst");
    fs::create_dir(&dst).unwrap();
    let opts = UnpackOptions {
        whiteouts: UnpackOptions::for_current_user().whiteouts,
        ..UnpackOptions::default()
    };
    let opts = if common::is_root() {
        opts
    } else {
        UnpackOptions::for_current_user()
    };
    layer::unpack(&one[..], &dst, None, &opts).unwrap();
    assert_eq!(tree(&dst), tree(&src));
    assert_eq!(fs::metadata(dst.join("a/hard")).unwrap().nlink(), 2);
    if xattrs {
        let mut buf = [0u8; 16];
        let n = rustix::fs::lgetxattr(dst.join("a/file"), "user.barge", &mut buf).unwrap();
        assert_eq!(&buf[..n], b"value");
    }
}

/// Unmounts on drop.
struct Mount(PathBuf);

impl Mount {
    fn overlay(target: &Path, options: &str) -> Self {
        fs::create_dir_all(target).unwrap();
        let st = Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", options])
            .arg(target)
            .status()
            .unwrap();
        assert!(st.success(), "mount overlay -o {options} failed");
        Self(target.to_path_buf())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn sh(dir: &Path, script: &str) {
    let st = Command::new("sh")
        .arg("-ec")
        .arg(script)
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(st.success(), "{script}");
}

#[test]
fn overlay_upper_to_layer_and_changes() {
    if !common::is_root() {
        eprintln!("SKIP: overlay mounts need root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let lower = t.join("lower");
    let upper = t.join("upper");
    let work = t.join("work");
    for d in [&lower, &upper, &work] {
        fs::create_dir_all(d).unwrap();
    }
    sh(
        &lower,
        "mkdir -p etc dir olddir/sub opq/inner keepdir; \
         echo keep > etc/keep; echo gone > etc/gone; echo old > etc/mod; \
         echo x > dir/x; echo f > olddir/sub/f; echo 1 > opq/old1; echo 2 > opq/inner/old2; \
         echo k > keepdir/k; ln -s keep etc/lnk",
    );
    let merged = t.join("merged");
    let expected = {
        let _m = Mount::overlay(
            &merged,
            &format!(
                "lowerdir={},upperdir={},workdir={},redirect_dir=off,metacopy=off",
                lower.display(),
                upper.display(),
                work.display()
            ),
        );
        sh(
            &merged,
            "echo new > etc/new; echo changed > etc/mod; rm etc/gone; rm -r olddir; \
             rm -r opq; mkdir opq; echo fresh > opq/fresh; \
             mkdir -p newdir/sub; echo n > newdir/sub/f; chmod 700 dir; \
             ln -s /etc/keep abs; mkfifo pipe",
        );
        tree(&merged)
    };

    let layer_tar = diff_from_overlay_upper(&upper, Vec::new()).unwrap();
    assert_eq!(
        layer_tar,
        diff_from_overlay_upper(&upper, Vec::new()).unwrap()
    );
    let names: Vec<String> = entries(&layer_tar).into_iter().map(|e| e.0).collect();
    for want in [
        ".wh.olddir",
        "etc/.wh.gone",
        "opq/.wh..wh..opq",
        "etc/new",
        "newdir/sub/f",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
    }
    assert!(!names.iter().any(|n| n.starts_with("keepdir")), "{names:?}");

    let changes = changes_from_overlay_upper(&upper, &LowerLayers::new(vec![lower.clone()]))
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>();
    assert_eq!(
        changes,
        [
            "A /abs",
            "C /dir",
            "C /etc",
            "D /etc/gone",
            "C /etc/mod",
            "A /etc/new",
            "A /newdir",
            "A /newdir/sub",
            "A /newdir/sub/f",
            "D /olddir",
            "C /opq",
            "A /opq/fresh",
            "D /opq/inner",
            "D /opq/old1",
            "A /pipe",
        ]
    );

    // The layer over the same lower gives the same tree.
    let new_layer = t.join("layer");
    fs::create_dir(&new_layer).unwrap();
    layer::unpack(&layer_tar[..], &new_layer, None, &UnpackOptions::default()).unwrap();
    let merged2 = t.join("merged2");
    let got = {
        let _m = Mount::overlay(
            &merged2,
            &format!("lowerdir={}:{}", new_layer.display(), lower.display()),
        );
        tree(&merged2)
    };
    assert_eq!(got, expected);

    // Whiteouts inside lower layers count: with the new layer on top, a
    // path it deletes is gone, one it adds exists.
    let stack = LowerLayers::new(vec![new_layer.clone(), lower.clone()]);
    assert!(!stack.exists(Path::new("etc/gone")));
    assert!(!stack.exists(Path::new("olddir/sub/f")));
    assert!(!stack.exists(Path::new("opq/old1")));
    assert!(stack.exists(Path::new("opq/fresh")));
    assert!(stack.exists(Path::new("keepdir/k")));
    assert_eq!(
        ChangeKind::Deleted.letter(),
        'D',
        "letters are podman's A/C/D"
    );
}

#[test]
fn redirect_dirs_are_refused() {
    if !common::is_root() {
        eprintln!("SKIP: trusted.* xattrs need root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let upper = tmp.path().join("upper");
    fs::create_dir_all(upper.join("renamed")).unwrap();
    rustix::fs::lsetxattr(
        upper.join("renamed"),
        "trusted.overlay.redirect",
        b"/orig",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    let err = diff_from_overlay_upper(&upper, Vec::new()).unwrap_err();
    assert!(err.to_string().contains("redirect_dir=off"), "{err}");
}
