//! The Dockerfile as a list of instructions (comments dropped, continuation lines
//! joined), with the few readers the checks need. hadolint checks the Dockerfile's
//! syntax and practices; this only reads what must agree with the code.

/// One instruction: keyword (upper case), its arguments, and its stage (0 = first).
#[derive(Clone, Debug)]
pub struct Instruction {
    /// `FROM`, `RUN`, `ENV`, ...
    pub keyword: String,
    /// Everything after the keyword, continuation lines joined with a space.
    pub args: String,
    /// Index of the build stage the instruction belongs to.
    pub stage: usize,
}

/// A parsed Dockerfile.
#[derive(Clone, Debug)]
pub struct Dockerfile {
    /// The instructions in order.
    pub instructions: Vec<Instruction>,
}

impl Dockerfile {
    /// Parses the text of a Dockerfile.
    pub fn parse(text: &str) -> Self {
        let mut instructions = Vec::new();
        let mut current = String::new();
        let mut stage = 0usize;
        let mut seen_from = false;
        for line in text.lines() {
            let trimmed = line.trim();
            if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
                continue;
            }
            let (body, continued) = match trimmed.strip_suffix('\\') {
                Some(b) => (b.trim_end(), true),
                None => (trimmed, false),
            };
            if !current.is_empty() {
                current.push(' ');
            }
            current.push_str(body);
            if continued {
                continue;
            }
            let text = std::mem::take(&mut current);
            let (keyword, args) = text.split_once(char::is_whitespace).unwrap_or((&text, ""));
            let keyword = keyword.to_ascii_uppercase();
            if keyword == "FROM" {
                if seen_from {
                    stage += 1;
                }
                seen_from = true;
            }
            instructions.push(Instruction {
                keyword,
                args: args.trim().to_owned(),
                stage,
            });
        }
        Dockerfile { instructions }
    }

    /// Index of the last stage (the image that is shipped).
    pub fn final_stage(&self) -> usize {
        self.instructions.last().map_or(0, |i| i.stage)
    }

    /// Instructions of `keyword` in the final stage.
    pub fn final_stage_all(&self, keyword: &str) -> Vec<&Instruction> {
        let last = self.final_stage();
        self.instructions
            .iter()
            .filter(|i| i.stage == last && i.keyword == keyword)
            .collect()
    }

    /// Arguments of the last `keyword` instruction of the final stage.
    pub fn final_stage_last(&self, keyword: &str) -> Option<&str> {
        self.final_stage_all(keyword)
            .last()
            .map(|i| i.args.as_str())
    }

    /// Names set by `ENV` in the final stage (`ENV A=1 B=2` or `ENV A 1`).
    pub fn env_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for i in self.final_stage_all("ENV") {
            if i.args.contains('=') {
                for pair in split_words(&i.args) {
                    if let Some((k, _)) = pair.split_once('=') {
                        names.push(k.to_owned());
                    }
                }
            } else if let Some(k) = i.args.split_whitespace().next() {
                names.push(k.to_owned());
            }
        }
        names
    }

    /// The default value of `ARG name=default` in the final stage.
    pub fn arg_default(&self, name: &str) -> Option<String> {
        self.final_stage_all("ARG").into_iter().find_map(|i| {
            let (k, v) = i.args.split_once('=')?;
            (k.trim() == name).then(|| v.trim().trim_matches('"').to_owned())
        })
    }

    /// Labels of the final stage (`key="value"` pairs, quotes removed).
    pub fn labels(&self) -> Vec<(String, String)> {
        self.final_stage_all("LABEL")
            .into_iter()
            .flat_map(|i| split_words(&i.args))
            .filter_map(|w| {
                let (k, v) = w.split_once('=')?;
                Some((k.to_owned(), v.trim_matches('"').to_owned()))
            })
            .collect()
    }
}

/// Splits on whitespace outside double quotes (quotes kept).
fn split_words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                word.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// The JSON array of an exec-form instruction (`["a", "b"]`), or a problem.
pub fn exec_form(what: &str, args: &str) -> Result<Vec<String>, String> {
    serde_json::from_str::<Vec<String>>(args.trim())
        .map_err(|e| format!("{what}: {args:?} is not the exec form [\"…\", …] ({e})"))
}
