//! Security model: what ninsho stores, compares, writes and prints, and
//! how.
//!
//! ninsho makes nine promises. Each section below says how one is kept, and
//! where in the code to check it.
//!
//! 1. **No secret at rest in clear**: hashed, or sealed where it must be
//!    recomputed.
//! 2. **Every secret comparison is constant-time**, with no early exit.
//! 3. **Single use is atomic**, across racing requests and app instances.
//! 4. **Every guess is counted before it is checked**, for every kind of
//!    secret, so racing guesses can't pass a back-off or the hard stop.
//! 5. **Nothing is lost half-way**: a failure after a secret is spent never
//!    leaves the user signed out and without it.
//! 6. **Secure by default**: seeds sealed, email no second factor, a masked
//!    contact showing less than its confirmation asks, unless the host
//!    says otherwise.
//! 7. **Secrets never print**, and their memory is wiped.
//! 8. **Errors are typed and fail closed**: nothing but `Ok` means verified.
//! 9. **Time and randomness are injected**, never read from globals.
//!
//! # At rest: keyed hashes
//!
//! | secret | what the store holds | hash context |
//! |---|---|---|
//! | one-time code (SMS, voice, email) | a [`KeyedHash`] per send, in [`SendRecord::code`] | `code:` and the challenge id |
//! | one-time link token (256 random bits) | a [`KeyedHash`] in [`LinkRecord::token`] | `link:` and the challenge id |
//! | recovery code | a [`KeyedHash`] per code, in [`StoredRecoveryCode::hash`] | `recovery:` and the set's random 16-byte salt |
//! | trusted-device token (256 random bits) | a [`KeyedHash`] in [`DeviceRecord::token`] | `device:`, the account and the device id |
//! | TOTP seed of an authenticator app | its key URI sealed with XChaCha20-Poly1305, in [`AuthenticatorRecord::sealed_uri`] (see below) | the account, as associated data |
//! | TOTP / HOTP seed used with the engines alone | whatever the host stores: seal it with a [`Sealer`](crate::seal::Sealer) too | — |
//! | phone number, email address | the normalised address, in clear | — |
//!
//! A [`KeyedHash`] is HMAC-SHA-256 over the length-prefixed context and the
//! secret, under a key of at least 32 bytes
//! ([`MIN_KEY_LEN`](crate::hash::MIN_KEY_LEN)) that the host supplies and
//! the database never sees, stored with the [`KeyId`] of that key
//! ([`crate::hash`]).
//!
//! - **Why keyed.** A six-digit code has a million values: an unkeyed hash
//!   of it is reversed by trying them all in well under a second. Without
//!   the key, a dump of the database reveals no code, token or recovery
//!   code, and gives nothing to guess offline.
//! - **Why a context.** The same secret hashed under two contexts gives
//!   unrelated tags, so a hash copied from one challenge, set or device
//!   record into another never matches there. Device tokens are bound to
//!   their account: a token stolen from one account is worthless against
//!   another.
//! - **Why not a slow password hash.** These secrets are random, not chosen
//!   by people; the short ones (codes) live minutes and allow a handful of
//!   tries, and the long ones (link and device tokens) have 256 bits. The
//!   key, not the work factor, is what stops offline guessing, and
//!   verification stays at one HMAC per key.
//!
//! **Key rotation.** [`KeyedHasher::new`] takes the key new hashes are
//! written with, and [`KeyedHasher::with_previous`] adds retired keys that
//! still verify what they wrote. Introduce a new key as current with the
//! old one as previous, and retire the old key once nothing that matters
//! was hashed with it: challenges expire within minutes, trusted devices
//! after their lifetime (30 days by default), but **recovery sets live
//! until they are regenerated**. A record whose key the hasher no longer
//! holds is neither a match nor a wrong guess: the flows report the retired
//! key ([`Error::RetiredKey`](crate::Error::RetiredKey)) and count nothing
//! against the user (the steps are in [`key_rotation`](super::key_rotation)).
//!
//! **Sealed, not hashed: authenticator seeds.** A TOTP seed
//! ([`OtpSecret`](crate::otp::OtpSecret)) has to be read back to compute
//! the expected code at every sign-in, so it can't be hashed. The
//! [`TwoFactor`](crate::service::TwoFactor) builder refuses to start
//! without a [`Sealer`](crate::seal::Sealer): with
//! [`AeadSealer`](crate::seal::AeadSealer) the key URI is encrypted with
//! XChaCha20-Poly1305 under a 256-bit key the database never sees, with a
//! fresh 192-bit random nonce, and authenticated together with the account
//! id, so a dump yields no seed and a sealed seed copied into another
//! account's record does not open. Sealing keys carry ids and rotate like
//! hashing keys; [`crate::seal`] describes the format and the procedure.
//! Only [`DangerousUnsealed`](crate::seal::DangerousUnsealed), meant for
//! tests and passed to the builder by name, stores seeds in clear. `tests/seeds_at_rest.rs` runs
//! a journey on PostgreSQL and searches every row for the seed in every
//! common encoding.
//!
//! **What is stored in clear, and why.**
//!
//! - *Phone numbers and email addresses* are needed in clear to send the
//!   next message. They are personal data rather than secrets: ninsho keeps
//!   them out of its logs and events (see below); encrypting them at rest
//!   is the host's choice.
//!
//! # Constant-time comparison
//!
//! Every comparison of a secret goes through [`subtle`] and examines every
//! candidate, whatever matched:
//!
//! - **tags**: two HMAC-SHA-256 tags are compared as four 64-bit words,
//!   combined without branching;
//! - **one-time codes**: the typed code is hashed once per key id and
//!   compared with the code of *every* live send of the challenge (a resend
//!   keeps earlier codes valid until their own expiry), the results
//!   combined without an early exit;
//! - **TOTP and HOTP**: every step (or counter) of the window is computed
//!   and compared, and the replay check is folded into the same pass, so
//!   accepting and rejecting take the same work ([`Totp::verify`](crate::otp::Totp::verify));
//! - **recovery codes**: the typed code is hashed once per key id and
//!   compared with every code of the set, used or unused, without stopping
//!   at a match ([`recovery::find`](crate::recovery::find));
//! - **one-time links and trusted devices**: the token's tag, its canonical
//!   spelling and (for devices) the account are all compared in constant
//!   time;
//! - **masked-contact confirmation** (the last digits of the phone that the
//!   [`MaskPolicy`](crate::contact::MaskPolicy) asks for — four by default,
//!   two more than any screen shows — or the whole email address, before a
//!   code is sent) is compared in constant time too;
//! - [`SecretBytes`](crate::SecretBytes), [`SecretString`](crate::SecretString)
//!   and [`OtpSecret`](crate::otp::OtpSecret) have no `PartialEq`: their
//!   equality is [`subtle::ConstantTimeEq`].
//!
//! What is *not* hidden: the length of a secret (not a secret itself here),
//! whether typed input has the shape of a code at all (parsing looks at the
//! input, not at the secret), lookups by a challenge or device id (ids are
//! random but not secret), and the latency of the host's store.
//!
//! # Atomic single use
//!
//! Every method of the storage port that changes state is **one atomic
//! call** with no default body ([`crate::store`]):
//!
//! - an **insert** that fails with a conflict if the record exists;
//! - a **compare-and-set** that replaces a record only if its stored
//!   version is still the one that was read, or, for an account's failure
//!   run, only if the whole run is still the one that was read;
//! - an **increment** that returns the new value: rate-limit counters
//!   never lose a hit;
//! - a **contact commit** that writes an account's record (its contacts,
//!   two-step settings, authenticator app, recovery codes and security
//!   epoch) and claims or releases phone numbers in the same step, so of
//!   two accounts claiming one number exactly one wins, and what must
//!   change together does.
//!
//! The flows read a record, let a pure engine decide, and write the result
//! with compare-and-set; on a conflict they read again and decide again.
//! A code therefore verifies at most once, every wrong attempt is counted
//! exactly once, and after the last allowed attempt even the right code is
//! refused. Reads may be stale; every decision that matters is re-checked
//! by the compare-and-set that follows.
//!
//! The contract is tested from the outside: the `testkit` module (feature
//! `testkit`) races 64 tasks on one record, counter, recovery set, epoch or
//! phone number, through the store and through the flows, and
//! `testkit::race_two_instances` does the same through two handles on one
//! database, as two servers behind a load balancer. Every shipped adapter
//! passes it; see [`writing_adapters`](super::writing_adapters) for how
//! they do it.
//!
//! # Every guess counted before it is checked
//!
//! One protocol serves every secret a user types or presents — a sent
//! code, a one-time link token, the masked-contact confirmation, a
//! recovery code, an authenticator code: read the account's failure run,
//! let the [`FailurePolicy`](crate::limits::FailurePolicy) decide whether a
//! guess may be tried now (not inside a back-off, not at the hard stop),
//! and write the run one longer with compare-and-set; only then compare.
//! Racing guesses that read the same run can't all be counted: one wins,
//! the others read again and are refused as soon as the run locks the
//! account. A right code ends the run; a right confirmation answer, or a
//! link token that is only opened or decided, takes its own count back. A
//! refusal that needs no comparison (an expired or used code) is not
//! counted.
//!
//! # Nothing lost half-way
//!
//! - **One write where both must happen.** The account's record holds its
//!   contacts, two-step settings, authenticator app, recovery codes and
//!   security epoch. Using a recovery code marks it used and moves the
//!   epoch on in one compare-and-set; turning two-step sign-in on stores
//!   its recovery codes with it; turning it off drops factors, codes and
//!   devices together; replacing or removing a factor moves the epoch on
//!   with it.
//! - **Change first, spend last.** A contact confirm writes its change,
//!   with the challenge id as a marker, before it spends the code; a retry
//!   after a failure in between finds the marker and only spends the code.
//! - **Optional follow-ups are reported.** A sign-in whose trusted-device
//!   record can't be written succeeds with
//!   [`trust_failed`](crate::service::SignedIn::trust_failed) set.
//! - **Lost replies.** The spent secret records a keyed hash of the sign-in
//!   attempt that spent it ([`SignInAttempt`](crate::service::SignInAttempt));
//!   a retry of the same proof from the same attempt gets the same success,
//!   from any other it is refused as used.
//!
//! # Secure by default
//!
//! - Authenticator seeds are sealed: the sealer is an argument of
//!   [`TwoFactor::builder`](crate::service::TwoFactor::builder), so a
//!   service without one does not compile; seeds go in clear only when the
//!   host passes [`DangerousUnsealed`](crate::seal::DangerousUnsealed) by
//!   name.
//! - Email is not a second factor (NIST SP 800-63B §5.1.3.1) unless the host
//!   turns on
//!   [`email_as_second_factor`](crate::service::TwoFactorBuilder::email_as_second_factor).
//! - A masked contact on screen shows fewer digits than the masked-contact
//!   confirmation asks for ([`MaskPolicy`](crate::contact::MaskPolicy)
//!   refuses settings that would give the answer away).
//! - A step-up proof is bound to the security epoch, and the grace period
//!   of an account ninsho has never seen starts, and is stored, at its
//!   first contact check.
//!
//! # Secrets never print
//!
//! - The secret types ([`SecretBytes`](crate::SecretBytes),
//!   [`SecretString`](crate::SecretString), [`OtpSecret`](crate::otp::OtpSecret),
//!   [`DeviceToken`](crate::device::DeviceToken),
//!   [`PlainCodes`](crate::recovery::PlainCodes)) print redacted under
//!   `Debug` and have no `Display`; reading one takes a call to
//!   `expose_secret`, whose name makes every use easy to find in review.
//! - [`Totp`](crate::otp::Totp) and [`HashKey`](crate::HashKey) never show
//!   their key in `Debug`; a hash's [`Tag`](crate::hash::Tag) prints
//!   redacted; a gateway [`Message`](crate::gateway::Message) redacts its
//!   body and its bare secret.
//! - Secret bytes live in [`zeroize`] buffers and are wiped on drop; so are
//!   the prepared HMAC states of hashing keys.
//! - No error carries secret material, so every error is safe to log.
//! - [`Event`](crate::events::Event)s carry no code, token or full address:
//!   destinations are masked (`+81 **-****-5678`), and
//!   [`Destination`](crate::model::Destination)'s own `Debug` masks the
//!   address.
//! - Contacts and callers are personal data, so no public type prints them
//!   under `Debug` either: a gateway [`Message`](crate::gateway::Message)
//!   (and a recorded [`Attempt`](crate::gateway::Attempt)) shows its
//!   recipient masked, [`ClaimChanges`](crate::store::ClaimChanges) its
//!   keys masked; [`IssueRequest`](crate::service::IssueRequest),
//!   `LinkRequest` and
//!   `VerificationRequest` redact the
//!   caller key (often an IP address) and the typed confirmation (a whole
//!   email address); [`MemoryStore`](crate::store::MemoryStore) prints how
//!   many records it holds, not their keys.
//!
//! # Typed errors that fail closed
//!
//! Only `Ok` means verified. The user's side of things is a
//! [`Refusal`](crate::Refusal) (wrong code, expired, locked until a given
//! instant, rate-limited until a given instant), to show in the UI; the
//! infrastructure's side is an error for which
//! [`Error::is_infrastructure`](crate::Error::is_infrastructure) is true:
//! the random source, the store, or a delivery that failed for a reason
//! that may clear (transient, rate-limited). In both cases nothing was
//! consumed or issued: a store error in the middle of a verification leaves
//! the challenge as it was, and a failing random source is reported, never
//! replaced by weaker randomness. Bad input (a malformed number, key URI
//! or token) is a typed error as well, never a panic: the library code
//! denies clippy's `unwrap_used`, `expect_used` and `panic` lints (all but
//! the `testkit`, whose job is to fail loudly).
//!
//! # Injected time and randomness
//!
//! Every rule that depends on time (expiry, TOTP steps, cooldowns,
//! back-off, grace periods) reads a [`Clock`](crate::Clock), and every code,
//! token, salt and id is drawn from a [`Random`](crate::Random) source, both
//! handed in by the host. Production uses [`SystemClock`](crate::SystemClock)
//! and [`OsRandom`](crate::OsRandom) (the operating system's CSPRNG); tests
//! use [`ManualClock`](crate::ManualClock) and
//! [`LockedRng::seeded`](crate::LockedRng::seeded), so no test sleeps and
//! every run is reproducible. Codes are drawn without modulo bias.
//!
//! [`KeyedHash`]: crate::hash::KeyedHash
//! [`KeyId`]: crate::hash::KeyId
//! [`KeyedHasher::new`]: crate::hash::KeyedHasher::new
//! [`KeyedHasher::with_previous`]: crate::hash::KeyedHasher::with_previous
//! [`SendRecord::code`]: crate::model::SendRecord::code
//! [`LinkRecord::token`]: crate::model::LinkRecord::token
//! [`StoredRecoveryCode::hash`]: crate::model::StoredRecoveryCode::hash
//! [`DeviceRecord::token`]: crate::model::DeviceRecord::token
//! [`AuthenticatorRecord::sealed_uri`]: crate::model::AuthenticatorRecord::sealed_uri
//! [`subtle`]: https://docs.rs/subtle
//! [`subtle::ConstantTimeEq`]: https://docs.rs/subtle/latest/subtle/trait.ConstantTimeEq.html
//! [`zeroize`]: https://docs.rs/zeroize
