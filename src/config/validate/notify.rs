//! `[[notify]]`: the webhooks told about health transitions.

use toml::Spanned;

use super::super::schema;
use super::super::{Notify, NotifyFormat};
use super::Validator;

impl Validator<'_> {
    pub(super) fn notify(&mut self, raw: Vec<Spanned<schema::Notify>>) -> Vec<Notify> {
        let mut out = Vec::new();
        for n in raw {
            let n = n.into_inner();
            match reqwest::Url::parse(n.url.get_ref()) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
                _ => self.err(
                    n.url.span(),
                    "notify.url",
                    format!("{:?} is not an http:// or https:// URL", n.url.get_ref()),
                ),
            }
            out.push(Notify {
                url: n.url.into_inner(),
                format: n.format.map_or(NotifyFormat::Json, |f| *f.get_ref()),
                token: n.token.map(Spanned::into_inner),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::tests::{CONFIG, line_of, one_error};

    #[test]
    fn webhook_urls_must_be_http() {
        let text = format!("{CONFIG}\n[[notify]]\nurl = \"ftp://hooks.example.net/x\"\n");
        one_error(
            &text,
            "notify.url",
            line_of(&text, "ftp://"),
            "is not an http:// or https:// URL",
        );
        let text = format!(
            "{CONFIG}\n[[notify]]\nurl = \"https://hooks.example.net/x\"\nformat = \"xml\"\n"
        );
        one_error(
            &text,
            "notify.format",
            line_of(&text, "xml"),
            "\"xml\" is not allowed; use \"json\" or \"alertmanager\"",
        );
    }
}
