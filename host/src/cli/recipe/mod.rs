//! `euphrosyne recipe …`: from an empty folder to a tested, packed ConfigMap.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};

use euphrosyne::digest::Digest;
use euphrosyne::manifest::{Kind, Manifest};

mod run;

#[derive(Debug, Subcommand)]
pub enum RecipeCommand {
    /// Scaffold a recipe crate that builds and tests as is.
    New(NewArgs),
    /// Build a recipe crate for wasm32-wasip2 and write the component's digest into recipe.toml.
    Build(BuildArgs),
    /// Write the recipe's ConfigMap YAML (manifest + component), compressed if needed.
    Pack(PackArgs),
    /// Check a component file against a digest; exits 1 on mismatch.
    Verify(VerifyArgs),
    /// Run a recipe locally in the same sandbox the host uses and print its analysis or outcome.
    Run(RunArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KindArg {
    /// A debugging recipe: `debug(incident) -> analysis`.
    Debug,
    /// An action recipe: `act(action-request) -> outcome`.
    Action,
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// Recipe name: lowercase letters, digits and `-` (it becomes the ConfigMap name).
    pub name: String,
    /// Debugging or action recipe.
    #[arg(long, value_enum)]
    pub kind: KindArg,
    /// Directory to create (default: ./NAME).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Path to the recipe-sdk crate (default: the SDK of the Euphrosyne checkout this binary was built from).
    #[arg(long, env = "EUPHROSYNE_SDK")]
    pub sdk: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The recipe crate (a directory with Cargo.toml and recipe.toml).
    #[arg(default_value = ".")]
    pub path: PathBuf,
}

#[derive(Debug, Args)]
pub struct PackArgs {
    /// The recipe crate, built.
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// Write here instead of stdout.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The component.
    pub file: PathBuf,
    /// Expected digest, `sha256:<64 hex>`.
    #[arg(long)]
    pub digest: String,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The component (`.wasm`), or a packed recipe (`.yaml` ConfigMap).
    pub file: PathBuf,
    /// Alert JSON: an Alertmanager webhook body, one alert, or a generic alert.
    #[arg(long)]
    pub alert: PathBuf,
    /// The manifest (default: recipe.toml beside FILE, or the one inside a packed recipe).
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// Kubeconfig for the kubernetes capability (default: none; Kubernetes calls then fail clearly).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Also allow HTTP to this host (`host`, `host:port`, `*.domain`); repeatable.
    #[arg(long = "allow-http", value_name = "HOST")]
    pub allow_http: Vec<String>,
    /// A secret value, `NAME=VALUE` (only names the manifest grants are readable); repeatable.
    #[arg(long = "secret", value_name = "NAME=VALUE")]
    pub secrets: Vec<String>,
    /// A directory of secret files (one file per secret, like a mounted Kubernetes Secret).
    #[arg(long)]
    pub secrets_dir: Option<PathBuf>,
    /// Action recipes: the action to run (default: the manifest's first action).
    #[arg(long)]
    pub action: Option<String>,
    /// Action recipes: parameters as a JSON object.
    #[arg(long, default_value = "{}")]
    pub params: String,
    /// Action recipes: who approved.
    #[arg(long, default_value = "local-user")]
    pub approver: String,
    /// Action recipes: a preview — every Kubernetes write is sent with `dryRun=All`; prints
    /// what would change and changes nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Allow a sensitive Kubernetes grant the manifest asks for (`secrets:get`, `pods:create`,
    /// `jobs:create`, RBAC kinds …), as a host's `[kube] allow_sensitive` would; repeatable.
    #[arg(long = "allow-sensitive", value_name = "RESOURCE:VERB")]
    pub allow_sensitive: Vec<String>,
    /// Print the whole run result as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(cmd: RecipeCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        RecipeCommand::New(a) => new(a),
        RecipeCommand::Build(a) => build(&a.path).map(|_| ExitCode::SUCCESS),
        RecipeCommand::Pack(a) => pack(a),
        RecipeCommand::Verify(a) => verify(a),
        RecipeCommand::Run(a) => run::run_local(a).await,
    }
}

fn new(a: NewArgs) -> anyhow::Result<ExitCode> {
    if !euphrosyne::manifest::is_dns_label(&a.name) {
        bail!(
            "recipe name `{}` must be lowercase letters, digits and `-` (at most 63), e.g. `disk-full`",
            a.name
        );
    }
    let dir = a.dir.unwrap_or_else(|| PathBuf::from(&a.name));
    if dir.exists() && dir.read_dir().map(|mut d| d.next().is_some()).unwrap_or(true) {
        bail!(
            "{} already exists and is not empty; choose another --dir",
            dir.display()
        );
    }
    let sdk = match a.sdk {
        Some(p) => p,
        None => {
            let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../recipe-sdk");
            if !built_from.join("Cargo.toml").exists() {
                bail!(
                    "cannot find recipe-sdk next to the checkout this binary was built from ({}); pass --sdk PATH",
                    built_from.display()
                );
            }
            built_from
        }
    };
    let sdk = sdk
        .canonicalize()
        .with_context(|| format!("recipe-sdk at {}", sdk.display()))?;
    let kind = match a.kind {
        KindArg::Debug => Kind::Debug,
        KindArg::Action => Kind::Action,
    };
    for (file, text) in super::scaffold::files(&a.name, kind, &sdk) {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().unwrap_or(&dir))
            .with_context(|| format!("creating {}", dir.display()))?;
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("created {} ({kind} recipe). Next:", dir.display());
    println!(
        "  cd {} && cargo test          # native tests with the SDK harness",
        dir.display()
    );
    println!("  euphrosyne recipe build        # wasm32-wasip2 component + digest in recipe.toml");
    println!("  euphrosyne recipe run {}.wasm --alert ALERT.json", a.name);
    println!("  euphrosyne recipe pack -o {}.yaml", a.name);
    Ok(ExitCode::SUCCESS)
}

fn read_manifest(path: &Path) -> anyhow::Result<Manifest> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Manifest::from_toml(&text, &path.display().to_string())?)
}

/// Replace (or add) the `digest = "…"` line, keeping the rest of the file as written.
fn write_digest(path: &Path, digest: &Digest) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path)?;
    let line = format!("digest = \"{digest}\"");
    let mut replaced = false;
    let mut out: Vec<String> = text
        .lines()
        .map(|l| {
            if !replaced && l.trim_start().starts_with("digest") && l.contains('=') {
                replaced = true;
                line.clone()
            } else {
                l.to_string()
            }
        })
        .collect();
    if !replaced {
        let at = out
            .iter()
            .position(|l| l.trim_start().starts_with('['))
            .unwrap_or(out.len());
        out.insert(at, line);
    }
    std::fs::write(path, out.join("\n") + "\n")?;
    Ok(())
}

/// The component file `recipe build` writes beside recipe.toml.
fn component_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.wasm"))
}

/// Build the crate at `dir`; returns the component path and digest.
pub fn build(dir: &Path) -> anyhow::Result<(PathBuf, Digest)> {
    let manifest_path = dir.join("recipe.toml");
    let manifest = read_manifest(&manifest_path)?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let meta = std::process::Command::new(&cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .output()
        .context("running `cargo metadata` (is cargo on PATH?)")?;
    if !meta.status.success() {
        bail!(
            "cargo metadata failed for {}: {}",
            dir.display(),
            String::from_utf8_lossy(&meta.stderr)
        );
    }
    let meta: serde_json::Value = serde_json::from_slice(&meta.stdout)?;
    let crate_manifest = dir.join("Cargo.toml").canonicalize()?;
    let package = meta["packages"]
        .as_array()
        .and_then(|ps| {
            ps.iter()
                .find(|p| p["manifest_path"].as_str().map(Path::new) == Some(crate_manifest.as_path()))
        })
        .context("cargo metadata does not list the crate")?;
    let package_name = package["name"].as_str().unwrap_or_default().to_string();
    let target_dir = PathBuf::from(meta["target_directory"].as_str().unwrap_or("target"));
    let workspace_root = meta["workspace_root"].as_str().unwrap_or(".").to_string();
    // Reproducible bytes: no absolute paths of this checkout or this machine's cargo home.
    let cargo_home =
        std::env::var("CARGO_HOME").unwrap_or_else(|_| format!("{}/.cargo", std::env::var("HOME").unwrap_or_default()));
    let mut rustflags = std::env::var("RUSTFLAGS").unwrap_or_default();
    rustflags.push_str(&format!(
        " --remap-path-prefix={workspace_root}=/recipe --remap-path-prefix={cargo_home}=/cargo"
    ));
    let status = std::process::Command::new(&cargo)
        .args([
            "build",
            "--target",
            "wasm32-wasip2",
            "--profile",
            "recipe",
            "-p",
            &package_name,
            "--manifest-path",
        ])
        .arg(&crate_manifest)
        .env("RUSTFLAGS", rustflags.trim())
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!(
            "cargo build failed for {} (is the target installed? `rustup target add wasm32-wasip2`)",
            dir.display()
        );
    }
    let built = target_dir
        .join("wasm32-wasip2/recipe")
        .join(format!("{}.wasm", package_name.replace('-', "_")));
    let bytes = std::fs::read(&built).with_context(|| format!("reading the built component {}", built.display()))?;
    let out = component_path(dir, &manifest.name);
    std::fs::write(&out, &bytes).with_context(|| format!("writing {}", out.display()))?;
    let digest = Digest::of(&bytes);
    write_digest(&manifest_path, &digest)?;
    eprintln!(
        "built {} {} → {} ({} KiB) {digest}",
        manifest.name,
        manifest.version,
        out.display(),
        bytes.len().div_ceil(1024)
    );
    if bytes.len() > euphrosyne::pack::MAX_OBJECT_BYTES {
        eprintln!("warning: the component is over 1 MiB; `recipe pack` will have to compress it");
    }
    Ok((out, digest))
}

fn pack(a: PackArgs) -> anyhow::Result<ExitCode> {
    let manifest = read_manifest(&a.path.join("recipe.toml"))?;
    let component = component_path(&a.path, &manifest.name);
    let bytes = std::fs::read(&component)
        .with_context(|| format!("reading {} (run `euphrosyne recipe build` first)", component.display()))?;
    let yaml = euphrosyne::pack::pack(&manifest, &bytes)?;
    match a.output {
        Some(path) => {
            std::fs::write(&path, &yaml).with_context(|| format!("writing {}", path.display()))?;
            eprintln!(
                "packed {} into {} ({} bytes)",
                manifest.name,
                path.display(),
                yaml.len()
            );
        }
        None => print!("{yaml}"),
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(a: VerifyArgs) -> anyhow::Result<ExitCode> {
    let expected: Digest = a.digest.parse()?;
    let bytes = std::fs::read(&a.file).with_context(|| format!("reading {}", a.file.display()))?;
    match expected.verify(&bytes) {
        Ok(()) => {
            println!("{}: OK {expected}", a.file.display());
            Ok(ExitCode::SUCCESS)
        }
        Err(actual) => {
            eprintln!(
                "{}: digest mismatch: expected {expected}, got {actual} — these are not the bytes that were pinned; do not run them",
                a.file.display()
            );
            Ok(ExitCode::FAILURE)
        }
    }
}
