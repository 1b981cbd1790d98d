//! `ztlake formats`: the registered provider formats.

use std::process::ExitCode;

use anyhow::Result;
use ztlake_normalize::providers::FORMATS;

/// Print every format with its provider, tables, framing and an example record.
pub fn run() -> Result<ExitCode> {
    println!("{}", render());
    Ok(ExitCode::SUCCESS)
}

/// The listing `ztlake formats` prints.
pub fn render() -> String {
    let mut out = String::from("auto — detect the format of every record (the default)\n");
    for f in FORMATS {
        let tables: Vec<&str> = f.tables.iter().map(|t| t.name()).collect();
        out.push_str(&format!(
            "\n{}\n  provider: {}   tables: {}   framing: {:?}\n  {}\n  example: {}\n",
            f.name,
            f.provider,
            tables.join(", "),
            f.framing,
            f.description,
            f.example
        ));
    }
    out
}
