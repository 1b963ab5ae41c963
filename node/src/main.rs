//! The `hlswarm` binary: parse the command line, hand over to the node library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = node::cli::Cli::parse();
    node::logging::init(cli.log_format);
    match node::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
