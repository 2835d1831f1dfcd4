//! The `cvm` command line.

use crate::cmd::{self, CmdResult};
use crate::cmd::{
    inspect::InspectArgs, measure::MeasureArgs, probe::ProbeArgs, verify::VerifyArgs,
};
use crate::error::{CliError, one_line};
use crate::exit::ExitCode;
use crate::output::{Format, write_json};
use clap::{Parser, Subcommand};
use std::ffi::OsString;
use std::io::Write;

/// cvm: launch confidential VMs, compute their launch measurements, verify their evidence.
#[derive(Debug, Parser)]
#[command(name = "cvm", version, max_term_width = 100)]
pub struct Cli {
    /// Output format: text for people, or one JSON object on stdout.
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// More log output on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Launch a guest: the built-in guest, a firmware image or a bzImage.
    #[cfg(target_os = "linux")]
    Launch(Box<cmd::launch::LaunchArgs>),
    /// Report which TEEs this host can launch, and why not for the others.
    Probe(ProbeArgs),
    /// Compute the launch measurement a guest will report, before launching it.
    Measure(Box<MeasureArgs>),
    /// Verify attestation evidence against AMD's roots, reference values and a policy;
    /// exit 0 only for a pass.
    Verify(Box<VerifyArgs>),
    /// Show the structure of a firmware image.
    #[command(subcommand)]
    Inspect(InspectArgs),
    /// Inside a Linux guest: the guest side of `cvm launch --attest`.
    #[command(subcommand)]
    Guest(cmd::guest::GuestArgs),
    /// Fetch the certificates and CRLs evidence needs from the vendor's service.
    #[command(subcommand)]
    Collateral(cmd::collateral::CollateralArgs),
}

/// Runs `cvm` with `args` (including the program name), writing results to `stdout` and
/// diagnostics to `stderr`. Returns the process exit code.
pub fn run<I, T>(args: I, stdout: &mut dyn Write, stderr: &mut dyn Write) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => return clap_error(&e, json_prescan(&args), stdout, stderr),
    };
    let format = cli.format;
    let (output, result) = dispatch(cli.command, format);
    let mut code = ExitCode::Success;
    if let Some(output) = &output
        && let Err(e) = output.write(format, stdout)
    {
        // A reader that closed the pipe early (`| head`) has what it wanted: end quietly
        // with the result's own code. Any other failure to write is reported.
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return report_error(&CliError::Output(e), None, stderr);
        }
    }
    if let Err(e) = result {
        // In JSON mode, a command that produced no result still prints one object.
        let json_out = (format == Format::Json && output.is_none()).then_some(&mut *stdout);
        code = report_error(&e, json_out, stderr);
    }
    code
}

/// Whether the command line asks for JSON output, read before clap has parsed it (so
/// that a usage error is printed as JSON too): `--format json` or `--format=json`.
fn json_prescan(args: &[OsString]) -> bool {
    let args: Vec<&str> = args.iter().skip(1).filter_map(|a| a.to_str()).collect();
    args.contains(&"--format=json") || args.windows(2).any(|w| w == ["--format", "json"])
}

fn dispatch(command: Command, format: Format) -> CmdResult {
    match command {
        #[cfg(target_os = "linux")]
        Command::Launch(args) => cmd::launch::run(&args, format),
        Command::Probe(args) => cmd::probe::run(&args),
        Command::Measure(args) => cmd::measure::run(&args),
        Command::Inspect(args) => cmd::inspect::run(&args),
        Command::Verify(args) => cmd::verify::run(&args),
        Command::Guest(args) => cmd::guest::run(&args),
        Command::Collateral(args) => cmd::collateral::run(&args),
    }
}

/// Prints `err` as one line on stderr (and, in JSON mode, as an object on stdout).
fn report_error(
    err: &CliError,
    json_out: Option<&mut dyn Write>,
    stderr: &mut dyn Write,
) -> ExitCode {
    let code = err.exit_code();
    let line = one_line(err);
    let _ = writeln!(stderr, "cvm: error: {line}");
    if let Some(out) = json_out {
        let value = serde_json::json!({
            "schema": crate::output::SCHEMA,
            "error": { "code": code.code(), "kind": code.name(), "message": line }
        });
        let _ = write_json(&value, out);
    }
    code
}

fn clap_error(
    e: &clap::Error,
    json: bool,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = write!(stdout, "{}", e.render());
            ExitCode::Success
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = write!(stderr, "{}", e.render());
            ExitCode::Usage
        }
        _ => {
            // clap's message, without the usage block, folded onto one line.
            let rendered = e.render().to_string();
            let message = rendered
                .split("\n\nUsage:")
                .next()
                .unwrap_or("invalid arguments");
            let message = message.strip_prefix("error: ").unwrap_or(message);
            let line = message.split_whitespace().collect::<Vec<_>>().join(" ");
            let line = line
                .split_once(" For more information, try")
                .map_or(line.as_str(), |(head, _)| head)
                .trim_end();
            let _ = writeln!(stderr, "cvm: error: {line} (see 'cvm --help')");
            if json {
                let code = ExitCode::Usage;
                let value = serde_json::json!({
                    "schema": crate::output::SCHEMA,
                    "error": { "code": code.code(), "kind": code.name(), "message": line }
                });
                let _ = write_json(&value, stdout);
            }
            ExitCode::Usage
        }
    }
}

/// Sets up logging on stderr for the given `-v` count.
pub fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => tracing::Level::WARN,
        1 => tracing::Level::INFO,
        2 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    // Ignore a second initialisation (tests call `run` repeatedly in one process).
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(false)
        .with_ansi(colour(
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
            std::env::var_os("NO_COLOR").as_deref(),
        ))
        .try_init();
}

/// Whether log lines are coloured: only on a terminal, and not when `NO_COLOR` is set to
/// anything but the empty string (<https://no-color.org>).
fn colour(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(std::ffi::OsStr::is_empty)
}

/// The `cvm` binary's entry point.
pub fn main() -> std::process::ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    // Logging is set up before parsing so that it covers everything; the level comes
    // from a cheap pre-scan (clap validates the flags properly afterwards).
    init_logging(verbosity(&args));
    // Not locked for the whole run: the guest's serial output and the log are written
    // from vCPU threads while `run` is in progress.
    let code = run(args, &mut std::io::stdout(), &mut std::io::stderr());
    code.into()
}

fn verbosity(args: &[OsString]) -> u8 {
    let mut n: u8 = 0;
    for a in args.iter().skip(1).filter_map(|a| a.to_str()) {
        if a == "--verbose" {
            n = n.saturating_add(1);
        } else if let Some(flags) = a.strip_prefix('-')
            && !flags.starts_with('-')
            && flags.chars().all(|c| c == 'v')
        {
            n = n.saturating_add(u8::try_from(flags.len()).unwrap_or(u8::MAX));
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        let set = Some(std::ffi::OsStr::new("1"));
        let empty = Some(std::ffi::OsStr::new(""));
        assert!(colour(true, None));
        assert!(colour(true, empty));
        assert!(!colour(true, set));
        assert!(!colour(false, None));
    }

    #[test]
    fn verbosity_prescan() {
        assert_eq!(verbosity(&os(&["cvm", "probe"])), 0);
        assert_eq!(verbosity(&os(&["cvm", "-vv", "probe", "--verbose"])), 3);
        assert_eq!(verbosity(&os(&["cvm", "probe", "--format", "json"])), 0);
    }

    #[test]
    fn unknown_flag_is_a_usage_error_on_one_line() {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(["cvm", "probe", "--bogus"], &mut out, &mut err);
        assert_eq!(code, ExitCode::Usage);
        assert!(out.is_empty());
        let err = String::from_utf8(err).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("--bogus"), "{err}");
    }

    #[test]
    fn help_goes_to_stdout_with_success() {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert_eq!(
            run(["cvm", "--help"], &mut out, &mut err),
            ExitCode::Success
        );
        assert!(String::from_utf8(out).unwrap().contains("probe"));
    }
}
