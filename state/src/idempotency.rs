//! A `message_id` runs once across every worker, and each reply address is answered
//! once — the Redis side of "exactly one reply per delivery".
//!
//! Two keys per `message_id`:
//! - `claim:<message_id>`: the request (worker and job) running it now. Taken with the
//!   slot lease of its first attempt, in the same script ([`Store::lease_for`]), renewed
//!   with the lease and dropped when the request ends; a dead worker's claim lapses
//!   within its TTL, like its leases.
//! - `done:<message_id>`: a hash with `reply` (the one run's reply, encoded by the
//!   worker, body included) and one field per reply address already answered
//!   ([`ReplyAddress::field`]). It lives until the request's deadline plus the worker's
//!   `done_ttl_after_deadline`.
//!
//! So a copy of the request with a new `(reply_to, correlation_id)` gets the stored
//! reply without running again, a copy whose address was answered (a redelivery, or a
//! producer's resend) is acked without a second reply, and a copy that arrives while
//! another worker runs it waits for that run. Replies are recorded after the broker
//! confirmed them: a worker that dies between the two sends the reply again on
//! redelivery (a duplicate, never a loss).

use std::time::Duration;

use crate::{Result, Store, keys, slots};

/// Where one delivery wants its reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReplyAddress<'a> {
    pub reply_to: &'a str,
    pub correlation_id: Option<&'a str>,
}

impl ReplyAddress<'_> {
    /// The field of the `done` hash that says this address was answered. Length-
    /// prefixed, so no queue name and correlation id can spell another pair's field.
    pub fn field(&self) -> String {
        format!(
            "to:{}:{}{}",
            self.reply_to.len(),
            self.reply_to,
            self.correlation_id.unwrap_or_default()
        )
    }
}

/// A request with a `message_id`, as one job of one worker holds it.
#[derive(Debug, Clone, Copy)]
pub struct RequestRef<'a> {
    pub message_id: &'a str,
    /// Unique to the job: the claim's value.
    pub claim: &'a str,
    /// The addresses of every delivery the job answers (fields, [`ReplyAddress::field`]).
    pub addresses: &'a [String],
}

/// Where a request stands across workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// Nobody runs it and it has not run: this job may.
    Open,
    /// It ran: the reply, to send to the addresses not yet answered.
    Done { reply: Vec<u8> },
    /// Every address of the job is answered already: ack, reply nothing.
    Answered,
    /// Another job holds the claim: wait for its reply.
    ClaimedElsewhere,
}

/// What [`Store::lease_for`] got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leased {
    /// A slot is leased, and the request (if it has a `message_id`) claimed: run it.
    Granted,
    /// The instance has no free slot.
    Full,
    /// The request needs no run: see why.
    NotNeeded(Standing),
}

/// Where a request stands and which of its addresses are answered (in the order of
/// [`RequestRef::addresses`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked<T> {
    pub outcome: T,
    pub answered: Vec<bool>,
}

/// How a request ended, for [`Store::finish_request`].
#[derive(Debug, Clone, Copy)]
pub struct Ending<'a> {
    pub request: RequestRef<'a>,
    /// The reply of the one run, to keep for later copies; `None` when it did not run
    /// here (answered `shed` or `expired`, or with another job's stored reply).
    pub reply: Option<&'a [u8]>,
    /// Addresses just answered (fields).
    pub answered: &'a [String],
    /// How long the record lives (it is only ever extended).
    pub ttl: Duration,
}

/// Where the request stands: (code, stored reply, answered flags). Codes: 1 open,
/// 2 done, 3 every address answered, 4 claimed by another job.
const STANDING_LUA: &str = r#"
local function standing(claim_key, done_key, claim, first_address)
  local answered, all = {}, true
  for i = first_address, #ARGV do
    local a = redis.call('HEXISTS', done_key, ARGV[i])
    answered[#answered + 1] = a
    if a == 0 then all = false end
  end
  local reply = redis.call('HGET', done_key, 'reply')
  if reply then return {2, reply, answered} end
  if all and #answered > 0 then return {3, false, answered} end
  local owner = redis.call('GET', claim_key)
  if owner and owner ~= claim then return {4, false, answered} end
  return {1, false, answered}
end
"#;

impl Store {
    /// Where `request` stands, without taking anything (before answering a copy that
    /// did not run: `shed` or `expired`).
    pub async fn request_standing(
        &self,
        deployment: &str,
        request: RequestRef<'_>,
    ) -> Result<Checked<Standing>> {
        static SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
            redis::Script::new(&format!(
                "{STANDING_LUA}\nlocal s = standing(KEYS[1], KEYS[2], ARGV[1], 2)\nreturn s"
            ))
        });
        let mut script = SCRIPT.key(keys::claim(deployment, request.message_id));
        script
            .key(keys::done(deployment, request.message_id))
            .arg(request.claim);
        for a in request.addresses {
            script.arg(a);
        }
        let (code, reply, answered): (i64, Option<Vec<u8>>, Vec<i64>) =
            script.invoke_async(&mut self.conn()).await?;
        Ok(Checked {
            outcome: standing(code, reply),
            answered: answered.into_iter().map(|a| a == 1).collect(),
        })
    }

    /// Take one of `slots` on `instance` for a request, under the lease `token` until
    /// `expires_ms`; with a `message_id` (`request`), only if the request is open or
    /// already this job's, and then claim it until `claim_ttl` from now as well — in one
    /// script, so two workers never both run it.
    #[allow(clippy::too_many_arguments)]
    pub async fn lease_for(
        &self,
        deployment: &str,
        instance: &str,
        slots: u32,
        token: &str,
        now_ms: i64,
        expires_ms: i64,
        request: Option<(RequestRef<'_>, Duration)>,
    ) -> Result<Checked<Leased>> {
        static SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
            redis::Script::new(&format!(
                r#"{STANDING_LUA}
{lease}
local answered = {{}}
if ARGV[5] ~= '' then
  local s = standing(KEYS[2], KEYS[3], ARGV[5], 7)
  if s[1] ~= 1 then return s end
  answered = s[3]
end
if lease(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4]) == 0 then return {{0, false, answered}} end
if ARGV[5] ~= '' then redis.call('SET', KEYS[2], ARGV[5], 'PX', ARGV[6]) end
return {{1, false, answered}}
"#,
                lease = slots::LEASE_LUA
            ))
        });
        let (claim_key, done_key) = match &request {
            Some((r, _)) => (
                keys::claim(deployment, r.message_id),
                keys::done(deployment, r.message_id),
            ),
            // Unused, but named inside the deployment's hash tag like every key.
            None => (keys::claim(deployment, ""), keys::done(deployment, "")),
        };
        let mut script = SCRIPT.key(keys::inflight(deployment, instance));
        script
            .key(claim_key)
            .key(done_key)
            .arg(now_ms)
            .arg(slots)
            .arg(token)
            .arg(expires_ms.max(now_ms + 1));
        match &request {
            Some((r, ttl)) => {
                script.arg(r.claim).arg(ttl.as_millis().max(1) as u64);
                for a in r.addresses {
                    script.arg(a);
                }
            }
            None => {
                script.arg("").arg(0);
            }
        }
        let (code, reply, answered): (i64, Option<Vec<u8>>, Vec<i64>) =
            script.invoke_async(&mut self.conn()).await?;
        let outcome = match code {
            1 => Leased::Granted,
            0 => Leased::Full,
            _ => Leased::NotNeeded(standing(code, reply)),
        };
        Ok(Checked {
            outcome,
            answered: answered.into_iter().map(|a| a == 1).collect(),
        })
    }

    /// The end of a request in one round trip: release its slot lease (when it has
    /// one); with a `message_id`, record its reply and the addresses just answered,
    /// and drop its claim.
    pub async fn finish_request(
        &self,
        deployment: &str,
        lease: Option<(&str, &str)>,
        ending: Option<Ending<'_>>,
    ) -> Result<()> {
        static SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
            redis::Script::new(
                r#"
if ARGV[1] ~= '' then redis.call('ZREM', KEYS[1], ARGV[1]) end
if ARGV[2] == '' then return 1 end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[3], 'reply', ARGV[4]) end
for i = 5, #ARGV do redis.call('HSET', KEYS[3], ARGV[i], 1) end
local ttl = tonumber(ARGV[3])
if redis.call('PTTL', KEYS[3]) < ttl then redis.call('PEXPIRE', KEYS[3], ttl) end
if redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end
return 1
"#,
            )
        });
        let (instance, token) = lease.unwrap_or(("", ""));
        let message_id = ending.map_or("", |e| e.request.message_id);
        let mut script = SCRIPT.key(keys::inflight(deployment, instance));
        script
            .key(keys::claim(deployment, message_id))
            .key(keys::done(deployment, message_id))
            .arg(token);
        match ending {
            Some(e) => {
                script
                    .arg(e.request.claim)
                    .arg(e.ttl.as_millis().max(1) as u64)
                    .arg(e.reply.unwrap_or_default());
                for a in e.answered {
                    script.arg(a);
                }
            }
            None => {
                script.arg("").arg(0).arg("");
            }
        }
        let _: i64 = script.invoke_async(&mut self.conn()).await?;
        Ok(())
    }
}

fn standing(code: i64, reply: Option<Vec<u8>>) -> Standing {
    match (code, reply) {
        (2, Some(reply)) => Standing::Done { reply },
        (3, _) => Standing::Answered,
        (4, _) => Standing::ClaimedElsewhere,
        _ => Standing::Open,
    }
}
