//! Image commands: pull, push, images, rmi, tag, untag, history, save,
//! load, login, logout and `image ...`.

use crate::{Exit, EXIT_ENGINE};
use anyhow::{anyhow, bail, Result};
use barge_engine::images::{self, Progress};
use barge_engine::template::Template;
use barge_engine::EngineError;
use clap::{Args, Subcommand};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;
use std::collections::HashMap;
use std::io::{IsTerminal as _, Read as _, Write as _};
use std::path::PathBuf;
use std::sync::Mutex;

#[derive(Subcommand, Debug)]
pub enum TopCommand {
    /// Pull an image from a registry.
    Pull(PullArgs),
    /// Push an image to a registry.
    Push(PushArgs),
    /// List images in local storage.
    Images(ListArgs),
    /// Remove one or more images.
    Rmi(RmiArgs),
    /// Add names to a local image.
    Tag(TagArgs),
    /// Remove names from a local image.
    Untag(UntagArgs),
    /// Show the history of an image.
    History(HistoryArgs),
    /// Save an image to an archive.
    Save(SaveArgs),
    /// Load an image from an archive.
    Load(LoadArgs),
    /// Create an image from a rootfs tarball.
    Import(ImportArgs),
    /// Log in to a registry.
    Login(LoginArgs),
    /// Log out of a registry.
    Logout(LogoutArgs),
    /// Manage images.
    #[command(subcommand)]
    Image(ImageCommand),
}

#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// List images in local storage.
    #[command(alias = "list")]
    Ls(ListArgs),
    /// Display the configuration of images.
    Inspect(InspectArgs),
    /// Remove unused images.
    Prune(PruneArgs),
    /// Check the image store for damage.
    Check(CheckArgs),
    /// Remove one or more images.
    Rm(RmiArgs),
    /// Pull an image from a registry.
    Pull(PullArgs),
    /// Push an image to a registry.
    Push(PushArgs),
    /// Add names to a local image.
    Tag(TagArgs),
    /// Remove names from a local image.
    Untag(UntagArgs),
    /// Show the history of an image.
    History(HistoryArgs),
    /// Save an image to an archive.
    Save(SaveArgs),
    /// Load an image from an archive.
    Load(LoadArgs),
    /// Create an image from a rootfs tarball.
    Import(ImportArgs),
}

#[derive(Args, Debug)]
pub struct TlsArgs {
    /// Require HTTPS and verify certificates.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", default_value = "true", action = clap::ArgAction::Set)]
    tls_verify: bool,
    /// Path of the authentication file.
    #[arg(long, value_name = "PATH")]
    authfile: Option<PathBuf>,
    /// Credentials (`USERNAME[:PASSWORD]`) for the registry.
    #[arg(long, value_name = "USERNAME[:PASSWORD]")]
    creds: Option<String>,
}

impl TlsArgs {
    fn options(&self) -> images::RegistryOptions {
        images::RegistryOptions {
            tls_verify: self.tls_verify,
            auth_file: self.authfile.clone(),
            credentials: self.creds.as_ref().map(|c| {
                let (u, p) = c.split_once(':').unwrap_or((c, ""));
                barge_engine::images::Credentials::new(u, p)
            }),
            // --registries-conf reaches the engine through
            // $CONTAINERS_REGISTRIES_CONF (main sets it), as in podman.
            registries_conf: None,
        }
    }
}

#[derive(Args, Debug)]
pub struct PullArgs {
    /// Suppress progress output.
    #[arg(short, long)]
    quiet: bool,
    /// Platform (`os/arch[/variant]`) of the image to pull.
    #[arg(long, value_name = "OS/ARCH")]
    platform: Option<String>,
    #[command(flatten)]
    tls: TlsArgs,
    /// The image to pull.
    #[arg(value_name = "IMAGE")]
    image: String,
}

#[derive(Args, Debug)]
pub struct PushArgs {
    /// Suppress progress output.
    #[arg(short, long)]
    quiet: bool,
    #[command(flatten)]
    tls: TlsArgs,
    /// The local image.
    #[arg(value_name = "IMAGE")]
    source: String,
    /// The destination (default: the image's name).
    #[arg(value_name = "DESTINATION")]
    destination: Option<String>,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Show all images (default hides intermediate images).
    #[arg(short, long)]
    all: bool,
    /// Show only image ids.
    #[arg(short, long)]
    quiet: bool,
    /// Do not truncate ids.
    #[arg(long)]
    no_trunc: bool,
    /// Do not print the header row.
    #[arg(short = 'n', long)]
    noheading: bool,
    /// Output format: `json` or a Go template.
    #[arg(long, value_name = "FORMAT")]
    format: Option<String>,
    /// Images to show (names).
    #[arg(value_name = "IMAGE")]
    filter_name: Option<String>,
}

#[derive(Args, Debug)]
pub struct RmiArgs {
    /// Remove images with several names given by id.
    #[arg(short, long)]
    force: bool,
    /// Remove all images.
    #[arg(short, long)]
    all: bool,
    /// The images.
    #[arg(value_name = "IMAGE")]
    images: Vec<String>,
}

#[derive(Args, Debug)]
pub struct TagArgs {
    /// The image.
    #[arg(value_name = "IMAGE")]
    image: String,
    /// The new names.
    #[arg(value_name = "TARGET_NAME", required = true)]
    names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct UntagArgs {
    /// The image.
    #[arg(value_name = "IMAGE")]
    image: String,
    /// The names to remove (default: all).
    #[arg(value_name = "NAME")]
    names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// A Go template.
    #[arg(short, long, value_name = "FORMAT")]
    format: Option<String>,
    /// The images.
    #[arg(value_name = "IMAGE", required = true)]
    images: Vec<String>,
}

#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// Show only ids.
    #[arg(short, long)]
    quiet: bool,
    /// Do not truncate.
    #[arg(long)]
    no_trunc: bool,
    /// Output format: `json` or a Go template.
    #[arg(long, value_name = "FORMAT")]
    format: Option<String>,
    /// The image.
    #[arg(value_name = "IMAGE")]
    image: String,
}

#[derive(Args, Debug)]
pub struct SaveArgs {
    /// Write to this file (or directory for `oci-dir`); default stdout
    /// (archive formats only, not a terminal).
    #[arg(short, long, value_name = "PATH")]
    output: Option<PathBuf>,
    /// `docker-archive` (default), `oci-archive` or `oci-dir`.
    #[arg(long, value_name = "FORMAT", default_value = "docker-archive")]
    format: String,
    /// Interpret additional arguments as images, not tags (docker-archive).
    #[arg(short, long = "multi-image-archive")]
    multi_image_archive: bool,
    /// Suppress output.
    #[arg(short, long)]
    quiet: bool,
    /// The image, then more tags for it (or more images with -m).
    #[arg(value_name = "IMAGE", required = true)]
    images: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Apply a Dockerfile instruction to the image config: CMD,
    /// ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR.
    #[arg(short, long, value_name = "INSTRUCTION")]
    change: Vec<String>,
    /// The history comment of the image.
    #[arg(short, long)]
    message: Option<String>,
    /// Suppress output.
    #[arg(short, long)]
    quiet: bool,
    /// Architecture of the image (default: this host's).
    #[arg(long)]
    arch: Option<String>,
    /// OS of the image (default: linux).
    #[arg(long)]
    os: Option<String>,
    /// Architecture variant of the image.
    #[arg(long)]
    variant: Option<String>,
    /// The rootfs tarball (tar, tar.gz, tar.zst), or `-` for stdin.
    #[arg(value_name = "PATH")]
    path: String,
    /// Name for the new image.
    #[arg(value_name = "REFERENCE")]
    reference: Option<String>,
}

#[derive(Args, Debug)]
pub struct LoadArgs {
    /// The archive or OCI layout directory (default: an archive on stdin).
    #[arg(short, long, value_name = "PATH")]
    input: Option<PathBuf>,
    /// Suppress output.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones.
    #[arg(short, long)]
    all: bool,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    force: bool,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Remove stale temporary data and unreferenced blobs.
    #[arg(long)]
    repair: bool,
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// User name.
    #[arg(short, long)]
    username: Option<String>,
    /// Password (prefer --password-stdin).
    #[arg(short, long)]
    password: Option<String>,
    /// Read the password from stdin.
    #[arg(long)]
    password_stdin: bool,
    #[command(flatten)]
    tls: TlsArgs,
    /// The registry.
    #[arg(value_name = "REGISTRY")]
    registry: String,
}

#[derive(Args, Debug)]
pub struct LogoutArgs {
    /// Path of the authentication file.
    #[arg(long, value_name = "PATH")]
    authfile: Option<PathBuf>,
    /// The registry.
    #[arg(value_name = "REGISTRY")]
    registry: String,
}

pub(crate) fn store(root: Option<&PathBuf>) -> Result<barge_engine::images::Store> {
    let root = root
        .cloned()
        .unwrap_or_else(barge_engine::rootless::default_root);
    Ok(barge_engine::images::Store::open(&root)?)
}

pub(crate) fn run(root: Option<&PathBuf>, command: TopCommand) -> Result<()> {
    match command {
        TopCommand::Pull(a) | TopCommand::Image(ImageCommand::Pull(a)) => pull(root, a),
        TopCommand::Push(a) | TopCommand::Image(ImageCommand::Push(a)) => push(root, a),
        TopCommand::Images(a) | TopCommand::Image(ImageCommand::Ls(a)) => list(root, a),
        TopCommand::Rmi(a) | TopCommand::Image(ImageCommand::Rm(a)) => rmi(root, a),
        TopCommand::Tag(a) | TopCommand::Image(ImageCommand::Tag(a)) => {
            images::tag(&store(root)?, &a.image, &a.names)?;
            Ok(())
        }
        TopCommand::Untag(a) | TopCommand::Image(ImageCommand::Untag(a)) => {
            images::untag(&store(root)?, &a.image, &a.names)?;
            Ok(())
        }
        TopCommand::History(a) | TopCommand::Image(ImageCommand::History(a)) => history(root, a),
        TopCommand::Save(a) | TopCommand::Image(ImageCommand::Save(a)) => save(root, a),
        TopCommand::Load(a) | TopCommand::Image(ImageCommand::Load(a)) => load(root, a),
        TopCommand::Import(a) | TopCommand::Image(ImageCommand::Import(a)) => import(root, a),
        TopCommand::Image(ImageCommand::Inspect(a)) => inspect(root, a),
        TopCommand::Image(ImageCommand::Prune(a)) => prune(root, a),
        TopCommand::Image(ImageCommand::Check(a)) => check(root, a),
        TopCommand::Login(a) => login(a),
        TopCommand::Logout(a) => {
            let opts = images::RegistryOptions {
                auth_file: a.authfile,
                ..images::RegistryOptions::default()
            };
            images::logout(&a.registry, &opts)?;
            println!("Removed login credentials for {}", a.registry);
            Ok(())
        }
    }
}

fn short(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

/// Shows transfer progress: bars on a terminal, podman-like lines otherwise.
struct Reporter {
    bars: Option<(MultiProgress, Mutex<HashMap<String, ProgressBar>>)>,
    quiet: bool,
}

impl Reporter {
    fn new(quiet: bool) -> Self {
        let bars = (!quiet && std::io::stderr().is_terminal()).then(|| {
            (
                MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                Mutex::new(HashMap::new()),
            )
        });
        Self { bars, quiet }
    }

    fn line(&self, s: &str) {
        if self.quiet {
            return;
        }
        match &self.bars {
            Some((m, _)) => {
                let _ = m.println(s);
            }
            None => eprintln!("{s}"),
        }
    }

    fn event(&self, p: &Progress) {
        if self.quiet {
            return;
        }
        let bar = |d: &str| -> Option<ProgressBar> {
            let (_, map) = self.bars.as_ref()?;
            map.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(d)
                .cloned()
        };
        match p {
            Progress::Resolved { description } => self.line(description),
            Progress::Trying { reference } => self.line(&format!("Trying to pull {reference}...")),
            Progress::Copying => self.line("Getting image source signatures"),
            Progress::Start { digest, size } => {
                if let Some((m, map)) = &self.bars {
                    let b = m.add(ProgressBar::new(*size));
                    if let Ok(style) = ProgressStyle::with_template(
                        "Copying blob {msg} {bar:30} {bytes}/{total_bytes} ({bytes_per_sec})",
                    ) {
                        b.set_style(style);
                    }
                    b.set_message(short(digest).chars().take(12).collect::<String>());
                    map.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(digest.clone(), b);
                }
            }
            Progress::Bytes { digest, done, .. } => {
                if let Some(b) = bar(digest) {
                    b.set_position(*done);
                }
            }
            Progress::Done { digest, skipped } => {
                if let Some(b) = bar(digest) {
                    b.finish_and_clear();
                }
                if *skipped {
                    self.line(&format!("Copying blob {digest} skipped: already exists"));
                } else {
                    self.line(&format!("Copying blob {digest} done"));
                }
            }
            Progress::Config { digest } => {
                if let Some(b) = bar(digest) {
                    b.finish_and_clear();
                }
                self.line(&format!("Copying config {digest} done"));
            }
            Progress::Manifest => self.line("Writing manifest to image destination"),
            Progress::Signatures => {}
        }
    }
}

fn pull(root: Option<&PathBuf>, a: PullArgs) -> Result<()> {
    let store = store(root)?;
    let rep = Reporter::new(a.quiet);
    let opts = images::PullOptions {
        reference: a.image.clone(),
        platform: a.platform,
        registry: a.tls.options(),
        // Layers download and unpack in parallel, up to 6 at a time (as
        // many as podman copies at once).
        jobs: 6,
        interactive: std::io::stdin().is_terminal() && std::io::stdout().is_terminal(),
    };
    let report = images::pull(&store, &opts, Some(&|p: &Progress| rep.event(p)))?;
    println!("{}", report.id);
    Ok(())
}

fn push(root: Option<&PathBuf>, a: PushArgs) -> Result<()> {
    let store = store(root)?;
    let rep = Reporter::new(a.quiet);
    rep.line("Getting image source signatures");
    let opts = images::PushOptions {
        source: a.source,
        destination: a.destination,
        registry: a.tls.options(),
    };
    images::push(&store, &opts, Some(&|p: &Progress| rep.event(p)))?;
    Ok(())
}

fn image_headers(field: &str) -> Option<String> {
    match field {
        "ID" | "Id" => Some("IMAGE ID".into()),
        "CreatedSince" | "Created" => Some("CREATED".into()),
        _ => None,
    }
}

fn print_template(format: &str, rows: &[Value], noheading: bool) -> Result<()> {
    let format = if noheading {
        format.strip_prefix("table").unwrap_or(format).trim_start()
    } else {
        format
    };
    let t = Template::parse(format)?;
    let out = t.render(rows, &image_headers);
    print!("{out}");
    Ok(())
}

fn list(root: Option<&PathBuf>, a: ListArgs) -> Result<()> {
    let store = store(root)?;
    let mut report = images::list(&store, &images::ListOptions { all: a.all })?;
    if let Some(f) = &a.filter_name {
        let img = images::resolve(&store, f).ok();
        report
            .images
            .retain(|i| img.as_ref().is_some_and(|m| m.id.hex() == i.id));
    }
    if a.quiet {
        let mut seen = std::collections::HashSet::new();
        for i in &report.images {
            let id = if a.no_trunc {
                format!("sha256:{}", i.id)
            } else {
                i.id.chars().take(12).collect()
            };
            if seen.insert(id.clone()) {
                println!("{id}");
            }
        }
        return Ok(());
    }
    if a.format.as_deref() == Some("json") {
        println!("{}", serde_json::to_string_pretty(&report.images)?);
        return Ok(());
    }
    let mut rows: Vec<Value> = report
        .images
        .iter()
        .flat_map(images::ImageSummary::rows)
        .collect();
    if a.no_trunc {
        for r in &mut rows {
            if let Some(id) = r
                .get("Id")
                .and_then(Value::as_str)
                .map(|s| format!("sha256:{s}"))
            {
                r["ID"] = Value::String(id);
            }
        }
    }
    let default = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.Created}}\t{{.Size}}";
    print_template(a.format.as_deref().unwrap_or(default), &rows, a.noheading)
}

fn rmi(root: Option<&PathBuf>, a: RmiArgs) -> Result<()> {
    let store = store(root)?;
    let mut refs = a.images;
    if a.all {
        refs.extend(store.images()?.into_iter().map(|i| i.id.hex().to_string()));
    }
    if refs.is_empty() {
        bail!("image name or ID must be specified");
    }
    let report = images::remove(
        &store,
        &refs,
        &images::RemoveOptions {
            force: a.force || a.all,
        },
    )?;
    for n in &report.untagged {
        println!("Untagged: {n}");
    }
    for d in &report.deleted {
        println!("Deleted: {d}");
    }
    if report.errors.is_empty() {
        return Ok(());
    }
    let all_not_found = report.errors.iter().all(|(_, e)| e.is_not_found());
    for (_, e) in &report.errors {
        eprintln!("Error: {e}");
    }
    Err(Exit(if all_not_found { 1 } else { EXIT_ENGINE }).into())
}

fn history(root: Option<&PathBuf>, a: HistoryArgs) -> Result<()> {
    let store = store(root)?;
    let entries = images::history(&store, &a.image)?;
    if a.quiet {
        for e in &entries {
            if a.no_trunc {
                println!("{}", e.id);
            } else {
                println!("{}", e.id.chars().take(12).collect::<String>());
            }
        }
        return Ok(());
    }
    if a.format.as_deref() == Some("json") {
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(());
    }
    let mut rows: Vec<Value> = entries.iter().map(images::HistoryEntry::row).collect();
    for r in &mut rows {
        if a.no_trunc {
            if let Some(id) = r.get("Id").cloned() {
                r["ID"] = id;
            }
        } else if let Some(s) = r.get("CreatedBy").and_then(Value::as_str) {
            if s.chars().count() > 45 {
                let t: String = s.chars().take(42).collect();
                r["CreatedBy"] = Value::String(format!("{t}..."));
            }
        }
    }
    let default = "table {{.ID}}\t{{.Created}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}";
    print_template(a.format.as_deref().unwrap_or(default), &rows, false)
}

fn inspect(root: Option<&PathBuf>, a: InspectArgs) -> Result<()> {
    let store = store(root)?;
    let mut values = Vec::new();
    let mut failed = None;
    for i in &a.images {
        match images::inspect(&store, i) {
            Ok(v) => values.push(v),
            Err(e) => failed = Some(e),
        }
    }
    match a.format.as_deref() {
        None | Some("json") => println!("{}", serde_json::to_string_pretty(&values)?),
        Some(f) => {
            let t = Template::parse(f)?;
            for v in &values {
                println!("{}", t.render_one(v));
            }
        }
    }
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

fn save(root: Option<&PathBuf>, a: SaveArgs) -> Result<()> {
    let store = store(root)?;
    let format: images::SaveFormat = a.format.parse()?;
    let mut names = a.images.into_iter();
    let image = names
        .next()
        .ok_or_else(|| anyhow!("an image is required"))?;
    if a.multi_image_archive && format != images::SaveFormat::DockerArchive {
        bail!("--multi-image-archive can only be used with the docker-archive format");
    }
    let opts = images::SaveOptions {
        image,
        output: a.output.clone().unwrap_or_default(),
        format,
        more: names.collect(),
        multi_image: a.multi_image_archive,
    };
    if a.output.is_none() {
        if !matches!(
            format,
            images::SaveFormat::OciArchive | images::SaveFormat::DockerArchive
        ) {
            bail!("--output is required for format {}", a.format);
        }
        if std::io::stdout().is_terminal() {
            bail!("refusing to save to terminal. Use -o flag or redirect");
        }
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        barge_engine::archive::save_to(&store, &opts, &mut out)?;
        out.flush()?;
        return Ok(());
    }
    images::save(&store, &opts)?;
    Ok(())
}

fn load(root: Option<&PathBuf>, a: LoadArgs) -> Result<()> {
    let store = store(root)?;
    let report = if let Some(input) = a.input {
        images::load(&store, &images::LoadOptions { input })?
    } else {
        if std::io::stdin().is_terminal() {
            bail!("cannot read from terminal, use command-line redirection or the --input flag");
        }
        barge_engine::archive::load_stream(&store, std::io::stdin().lock())?
    };
    if a.quiet {
        return Ok(());
    }
    for img in &report.images {
        if img.names.is_empty() {
            println!("Loaded image: sha256:{}", img.id);
        }
        for n in &img.names {
            println!("Loaded image: {n}");
        }
    }
    Ok(())
}

fn import(root: Option<&PathBuf>, a: ImportArgs) -> Result<()> {
    if a.path.starts_with("http://") || a.path.starts_with("https://") {
        bail!("importing from a URL is not supported: download the tarball and import the file");
    }
    let store = store(root)?;
    let opts = barge_engine::archive::ImportOptions {
        reference: a.reference,
        changes: a.change,
        message: a.message,
        arch: a.arch,
        os: a.os,
        variant: a.variant,
    };
    let report = if a.path == "-" {
        if std::io::stdin().is_terminal() {
            bail!("cannot read from terminal, use command-line redirection");
        }
        barge_engine::archive::import(&store, std::io::stdin().lock(), &opts)?
    } else {
        let f = std::fs::File::open(&a.path).map_err(|e| anyhow!("opening {}: {e}", a.path))?;
        barge_engine::archive::import(&store, f, &opts)?
    };
    // podman prints the id also with --quiet.
    println!("sha256:{}", report.id);
    Ok(())
}

fn prune(root: Option<&PathBuf>, a: PruneArgs) -> Result<()> {
    let store = store(root)?;
    if !a.force {
        if a.all {
            eprint!("WARNING! This command removes all images without at least one container associated with them.\nAre you sure you want to continue? [y/N] ");
        } else {
            eprint!("WARNING! This command removes all dangling images.\nAre you sure you want to continue? [y/N] ");
        }
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes" | "Yes") {
            return Ok(());
        }
    }
    let report = images::prune(&store, &images::PruneOptions { all: a.all })?;
    for id in &report.removed {
        println!("{id}");
    }
    Ok(())
}

fn check(root: Option<&PathBuf>, a: CheckArgs) -> Result<()> {
    let store = store(root)?;
    let report = images::check(&store, a.repair)?;
    for p in &report.problems {
        println!("{p}");
    }
    for r in &report.repaired {
        println!("Removed {r}");
    }
    println!(
        "{} blobs verified, {} problems found",
        report.ok,
        report.problems.len()
    );
    if !report.problems.is_empty() && !a.repair {
        return Err(anyhow!(EngineError::Invalid(format!(
            "image store {} has {} problems (run with --repair to clean up what can be removed)",
            store.root().display(),
            report.problems.len()
        ))));
    }
    Ok(())
}

fn login(a: LoginArgs) -> Result<()> {
    let Some(username) = a.username else {
        bail!("username is required: use --username");
    };
    let password = if a.password_stdin {
        if a.password.is_some() {
            bail!("--password and --password-stdin are mutually exclusive");
        }
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        s.trim_end_matches(['\n', '\r']).to_string()
    } else {
        match a.password {
            Some(p) => p,
            None => bail!("password is required: use --password-stdin"),
        }
    };
    let opts = images::LoginOptions {
        registry: a.registry,
        credentials: images::Credentials::new(&username, &password),
        registry_options: a.tls.options(),
    };
    images::login(&opts)?;
    println!("Login Succeeded!");
    Ok(())
}

/// Pulls an image for `run`/`create` (progress on stderr like podman).
pub(crate) fn pull_for_create(
    store: &images::Store,
    image: &str,
    quiet: bool,
    tls_verify: bool,
) -> std::result::Result<(), EngineError> {
    let rep = Reporter::new(quiet);
    let opts = images::PullOptions {
        reference: image.to_string(),
        platform: None,
        registry: images::RegistryOptions {
            tls_verify,
            ..images::RegistryOptions::default()
        },
        jobs: 3,
        interactive: false,
    };
    images::pull(store, &opts, Some(&|p: &Progress| rep.event(p)))?;
    Ok(())
}

/// Prints rows through a Go template (`table` prefix adds headers).
pub(crate) fn print_rows(
    format: &str,
    rows: &[Value],
    noheading: bool,
    headers: &dyn Fn(&str) -> Option<String>,
) -> Result<()> {
    let format = if noheading {
        format.strip_prefix("table").unwrap_or(format).trim_start()
    } else {
        format
    };
    let t = Template::parse(format)?;
    print!("{}", t.render(rows, headers));
    Ok(())
}
