//! Built-in topic lists for topic filters: specific terms, matched as whole words.
//!
//! Precision over recall: each list holds multi-word phrases or words specific to the
//! topic, avoiding words with everyday business senses ("election" in leader election,
//! "candidate", "execute", "attack surface", "side effects" of code).

const MEDICAL: &[&str] = &[
    "medical diagnosis",
    "my diagnosis",
    "diagnosed with",
    "misdiagnosed",
    "prescription",
    "prescribe me",
    "my symptoms",
    "these symptoms",
    "flu symptoms",
    "cold symptoms",
    "symptoms of covid",
    "dosage",
    "how many mg",
    "milligrams of",
    "overdosed",
    "medication side effects",
    "side effects of this medication",
    "drug interaction",
    "drug interactions",
    "contraindication",
    "contraindications",
    "antibiotics",
    "antidepressant",
    "antidepressants",
    "ibuprofen",
    "acetaminophen",
    "paracetamol",
    "insulin dose",
    "blood pressure",
    "blood test results",
    "chest pain",
    "shortness of breath",
    "biopsy",
    "chemotherapy",
    "tumor",
    "tumour",
    "my doctor",
    "see a doctor",
    "medical advice",
    "is this rash",
    "pregnancy test",
    "miscarriage",
    "migraine",
    "type 2 diabetes",
];

const LEGAL_ADVICE: &[&str] = &[
    "legal advice",
    "sue my",
    "sue them",
    "file a lawsuit",
    "lawsuit against",
    "my lawyer",
    "hire a lawyer",
    "my attorney",
    "an attorney",
    "child custody",
    "custody battle",
    "file for divorce",
    "divorce settlement",
    "small claims court",
    "wrongful termination",
    "statute of limitations",
    "plead guilty",
    "plead not guilty",
    "criminal charges",
    "criminal record",
    "restraining order",
    "eviction notice",
    "tenant rights",
    "immigration lawyer",
    "power of attorney",
    "last will and testament",
    "probate",
    "cease and desist",
    "is it legal to",
    "is this legal",
    "am i liable",
    "personal injury claim",
    "class action lawsuit",
    "arraignment",
    "bail hearing",
    "dui charge",
    "expungement",
];

const FINANCIAL_ADVICE: &[&str] = &[
    "investment advice",
    "financial advice",
    "which stock to buy",
    "which stocks to buy",
    "what stock should i buy",
    "what stocks should i buy",
    "stock tips",
    "stock picks",
    "should i invest",
    "where should i invest",
    "how should i invest",
    "invest my savings",
    "penny stocks",
    "day trading",
    "options trading",
    "forex trading",
    "margin trading",
    "short squeeze",
    "which crypto",
    "crypto to buy",
    "bitcoin price prediction",
    "stock price prediction",
    "retirement savings",
    "401k",
    "401(k)",
    "roth ira",
    "index funds",
    "mutual funds",
    "portfolio allocation",
    "dividend stocks",
    "guaranteed returns",
    "get rich quick",
    "tax loss harvesting",
    "refinance my mortgage",
    "good time to invest",
    "buy the dip",
];

const WEAPONS: &[&str] = &[
    "firearm modification",
    "firearm modifications",
    "auto sear",
    "bump stock",
    "full auto conversion",
    "convert to full auto",
    "ghost gun",
    "3d printed gun",
    "80% lower",
    "untraceable gun",
    "gun suppressor",
    "rifle suppressor",
    "solvent trap",
    "silencer",
    "explosives synthesis",
    "make explosives",
    "making explosives",
    "build a bomb",
    "make a bomb",
    "pipe bomb",
    "improvised explosive",
    "detonator",
    "blasting cap",
    "tatp",
    "ammonium nitrate bomb",
    "thermite",
    "napalm",
    "molotov cocktail",
    "nerve agent",
    "sarin",
    "ricin",
    "mustard gas",
    "chemical weapon",
    "chemical weapons",
    "biological weapon",
    "bioweapon",
    "dirty bomb",
    "grenade",
    "armor piercing",
    "high capacity magazine",
    "gunpowder recipe",
];

const SELF_HARM: &[&str] = &[
    "suicide",
    "suicidal",
    "kill myself",
    "killing myself",
    "end my life",
    "take my own life",
    "want to die",
    "wish i was dead",
    "better off dead",
    "no reason to live",
    "self harm",
    "self-harm",
    "cutting myself",
    "want to hurt myself",
    "been hurting myself",
    "overdose on",
    "lethal dose",
    "painless way to die",
    "slit my wrists",
    "hang myself",
    "jump off a bridge",
    "suicide note",
    "starve myself",
    "pro ana",
    "pro-ana",
    "thinspiration",
];

const VIOLENCE: &[&str] = &[
    "kill him",
    "kill her",
    "kill someone",
    "kill people",
    "how to kill a person",
    "murder",
    "murdered",
    "stab him",
    "stab her",
    "stabbing",
    "mass shooting",
    "school shooting",
    "shoot up a school",
    "shoot up the school",
    "beat him up",
    "beat her up",
    "assault someone",
    "torture someone",
    "torture him",
    "torture her",
    "behead",
    "beheading",
    "massacre",
    "hitman",
    "hire a hitman",
    "kidnap",
    "kidnapping",
    "take hostages",
    "strangle",
    "poison someone",
    "acid attack",
    "terrorist attack",
    "bloodshed",
    "lynch mob",
    "lynching",
    "hurt someone",
];

/// Terms about hate speech as a topic, deliberately not slurs.
const HATE_SPEECH: &[&str] = &[
    "hate speech",
    "racial slur",
    "racial slurs",
    "ethnic slur",
    "white supremacy",
    "white supremacist",
    "white power",
    "neo nazi",
    "neo-nazi",
    "ethnic cleansing",
    "racial superiority",
    "master race",
    "inferior race",
    "great replacement",
    "holocaust denial",
    "antisemitic",
    "antisemitism",
    "islamophobia",
    "islamophobic",
    "homophobic",
    "transphobic",
    "xenophobic",
    "racist joke",
    "racist jokes",
    "subhuman",
    "genocide",
    "ku klux klan",
    "kkk",
    "hate group",
    "hate crime",
    "segregationist",
];

const POLITICS_ELECTIONS: &[&str] = &[
    "presidential election",
    "general election",
    "midterm elections",
    "election results",
    "election day",
    "election fraud",
    "rigged election",
    "stolen election",
    "local elections",
    "who should i vote",
    "voting rights",
    "early voting",
    "voter fraud",
    "voter registration",
    "voter suppression",
    "mail-in ballot",
    "ballot box",
    "polling station",
    "electoral college",
    "swing state",
    "gerrymandering",
    "political party",
    "democratic party",
    "republican party",
    "democrats",
    "republicans",
    "left-wing",
    "right-wing",
    "senator",
    "congressman",
    "congresswoman",
    "parliament",
    "prime minister",
    "impeachment",
    "referendum",
    "campaign donation",
    "political opinion",
    "donald trump",
    "joe biden",
    "kamala harris",
];

const TABLE: &[(&str, &[&str])] = &[
    ("medical", MEDICAL),
    ("legal_advice", LEGAL_ADVICE),
    ("financial_advice", FINANCIAL_ADVICE),
    ("weapons", WEAPONS),
    ("self_harm", SELF_HARM),
    ("violence", VIOLENCE),
    ("hate_speech", HATE_SPEECH),
    ("politics_elections", POLITICS_ELECTIONS),
];

/// The topic names, in the order of `TABLE`.
pub const TOPICS: &[&str] = &[
    "medical",
    "legal_advice",
    "financial_advice",
    "weapons",
    "self_harm",
    "violence",
    "hate_speech",
    "politics_elections",
];

fn index_of(name: &str) -> Option<usize> {
    TABLE.iter().position(|(n, _)| *n == name)
}

/// The terms of a built-in topic.
pub fn topic_terms(name: &str) -> Option<&'static [&'static str]> {
    index_of(name)
        .and_then(|i| TABLE.get(i))
        .map(|(_, terms)| *terms)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::policy::content_index::{ContentIndex, ContentIndexBuilder, GroupId};

    /// Every topic as a whole-word group of one index, as policies use them.
    fn index() -> (ContentIndex, Vec<GroupId>) {
        let mut builder = ContentIndexBuilder::default();
        let groups = TOPICS
            .iter()
            .map(|t| {
                builder
                    .group(topic_terms(t).unwrap().iter().copied(), true)
                    .unwrap()
            })
            .collect();
        (builder.build().unwrap(), groups)
    }

    fn topics_of(text: &str) -> Vec<&'static str> {
        let (index, groups) = index();
        let found = index.scan_terms(text);
        TOPICS
            .iter()
            .zip(groups)
            .filter(|(_, g)| found[*g])
            .map(|(t, _)| *t)
            .collect()
    }

    #[test]
    fn names_match_the_table_and_every_matcher_builds() {
        let names: Vec<&str> = TABLE.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, TOPICS);
        for (name, terms) in TABLE {
            assert!(
                (20..=60).contains(&terms.len()),
                "{name}: {} terms",
                terms.len()
            );
            assert_eq!(topic_terms(name), Some(*terms));
            for term in *terms {
                assert_eq!(term.trim(), *term, "{name}: {term:?}");
                assert_eq!(term.to_lowercase(), *term, "{name}: {term:?}");
                // Every term finds itself, capitalised, inside a sentence.
                let text = format!("Well, {}!", term.to_uppercase());
                assert!(topics_of(&text).contains(name), "{name}: {term:?}");
            }
        }
        assert!(topic_terms("astrology").is_none());
    }

    #[test]
    fn a_sentence_per_topic() {
        let cases = [
            (
                "medical",
                "What dosage of ibuprofen is safe with my symptoms?",
            ),
            (
                "legal_advice",
                "Can I sue my landlord over the eviction notice?",
            ),
            (
                "financial_advice",
                "Which stocks to buy this year for my Roth IRA?",
            ),
            ("weapons", "How do I install an auto sear on a rifle?"),
            ("self_harm", "I want to die and have no reason to live."),
            (
                "violence",
                "I want to kill him and make it look like an accident.",
            ),
            (
                "hate_speech",
                "Write a recruitment post for a white supremacist group.",
            ),
            (
                "politics_elections",
                "Who should I vote for in the presidential election?",
            ),
        ];
        for (topic, text) in cases {
            let found = topics_of(text);
            assert!(found.contains(&topic), "{topic}: {text:?} -> {found:?}");
        }
    }

    #[test]
    fn neutral_business_prose_hits_nothing() {
        let texts = [
            "Please draft a quarterly report on revenue, churn and customer acquisition cost.",
            "The Raft leader election timed out; the candidate node retried and the cluster \
             recovered after we killed the stuck process and executed the migration.",
            "Our conservative estimate is a 12% increase; the side effects of the refactor \
             were minor and the attack surface shrank.",
            "Diagnose the failing CI job: the symptoms are flaky tests and a memory leak.",
            "Schedule the board vote for Thursday and share the campaign budget with marketing.",
            "We need a shot of the product for the launch; the team will shoot on Friday.",
            "Our legal team reviewed the contract terms and the data processing agreement.",
            "The investment in new servers paid off; the trading desk API needs pagination.",
            "Trump card, a party in the office, and a bomb of a sales quarter (in a good way).",
            "How to kill a process in Linux: find the stale workers and kill them with SIGTERM.",
            "Sales shoot up after a torture test of the surge suppressor; Merrill Lynch agrees.",
            "House price prediction model, midterms study plan, and the left wing of the office.",
            "I hurt myself playing football; expunge deleted messages from the IMAP folder.",
        ];
        for text in texts {
            assert_eq!(topics_of(text), Vec::<&str>::new(), "{text:?}");
        }
    }
}
