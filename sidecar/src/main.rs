//! The `audit-trail` binary: parse arguments, run, map the outcome to an exit code and one
//! line on stderr.

use clap::Parser;

use audit_trail_sidecar::cli::Cli;

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                // Into a closed pipe (`audit-trail --help | head -1`) the rest is not wanted:
                // not a panic.
                use std::io::Write;
                let _ = write!(std::io::stdout(), "{e}");
                std::process::exit(0);
            }
            // clap's message is several lines (usage, a tip); keep the one that names the cause.
            let rendered = e.to_string();
            let first = rendered.lines().next().unwrap_or("invalid arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("audit-trail: {first} (see audit-trail --help)");
            std::process::exit(2);
        }
    };
    audit_trail_sidecar::logging::init(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("audit-trail: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(audit_trail_sidecar::run(cli)) {
        eprintln!("audit-trail: {e}");
        std::process::exit(e.exit_code());
    }
}
