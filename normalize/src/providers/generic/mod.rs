//! Provider-neutral formats: wrappers that shippers put around other formats' records.
//!
//! [`Delegate`] is the shared machinery: it detects the format of an inner record (a line or
//! document taken out of a wrapper) among the registered formats, keeps one parser per inner
//! format for the source (so stateful formats such as VPC flow logs with a header keep their
//! state), and labels the rows with the inner format.

pub mod message;

use crate::format::{Format, ParseOptions, Parser, SNIFF_THRESHOLD};
use crate::output::{Output, Record};

/// Detects and parses records found inside a wrapper. Envelope formats exclude themselves (and
/// other envelopes) from detection, so nesting is bounded: an inner record is never handed to
/// a wrapper again.
pub(crate) struct Delegate {
    options: ParseOptions,
    exclude: &'static [&'static str],
    parsers: Vec<(&'static Format, Box<dyn Parser>)>,
    last: Option<usize>,
}

impl Delegate {
    /// A delegate whose detection skips the formats named in `exclude`.
    pub(crate) fn new(options: &ParseOptions, exclude: &'static [&'static str]) -> Self {
        Self { options: options.clone(), exclude, parsers: Vec::new(), last: None }
    }

    /// The registered, non-excluded format that claims `bytes` with the highest confidence.
    pub(crate) fn detect(&self, bytes: &[u8]) -> Option<&'static Format> {
        let mut best: Option<(&'static Format, u8)> = None;
        for &format in crate::providers::FORMATS {
            if self.exclude.contains(&format.name) {
                continue;
            }
            let score = (format.sniff)(bytes);
            if score >= SNIFF_THRESHOLD && best.is_none_or(|(_, s)| score > s) {
                best = Some((format, score));
            }
        }
        best.map(|(f, _)| f)
    }

    fn index_of(&mut self, format: &'static Format) -> Option<usize> {
        if let Some(i) = self.parsers.iter().position(|(f, _)| std::ptr::eq(*f, format)) {
            return Some(i);
        }
        let parser = (format.new_parser)(&self.options).ok()?;
        self.parsers.push((format, parser));
        Some(self.parsers.len() - 1)
    }

    /// Parse an inner record with the format that claims it (sticking to the previous inner
    /// format while it still claims the record). Rows carry the inner format's name and
    /// provider. Returns `false`, having written nothing, when no format claims the record.
    pub(crate) fn parse(&mut self, record: &Record<'_>, out: &mut Output) -> bool {
        let sticky = self.last.filter(|&i| {
            self.parsers.get(i).is_some_and(|(f, _)| (f.sniff)(record.bytes) >= SNIFF_THRESHOLD)
        });
        let index = match sticky {
            Some(i) => Some(i),
            None => self.detect(record.bytes).and_then(|f| self.index_of(f)),
        };
        let Some((i, (format, parser))) =
            index.and_then(|i| self.parsers.get_mut(i).map(|p| (i, p)))
        else {
            return false;
        };
        self.last = Some(i);
        out.set_format(format.name, format.provider);
        parser.parse(record, out);
        true
    }

    /// End of the source: let every inner parser flush its state and counts.
    pub(crate) fn finish(&mut self, out: &mut Output) {
        for (format, parser) in &mut self.parsers {
            out.set_format(format.name, format.provider);
            parser.finish(out);
        }
    }
}
