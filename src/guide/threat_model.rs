//! Threat model: who attacks a second factor, what stops each of them, and
//! what stays the host's job.
//!
//! # Assumptions
//!
//! The attacker may know the victim's account name, phone number and email
//! address, and usually the password (a second factor exists because
//! passwords leak). They can send any number of requests, from many
//! addresses, concurrently, to every instance of the host; they can read a
//! copy of the database or the logs; they can measure response times. They
//! can't read the host's memory or its configuration (the hashing keys, the
//! key that seals authenticator seeds), and they don't control the host's
//! code.
//!
//! Each section names a threat, what ninsho does about it, and what is left
//! to the host.
//!
//! # Online guessing
//!
//! *Typing codes until one works.*
//!
//! - A challenge allows 5 wrong codes across all its resends; then it is
//!   dead and even the right code is refused. With the defaults one
//!   challenge gives at most a 25-in-a-million chance (see
//!   [`defaults`](super::defaults)).
//! - An account's consecutive failures, across all its challenges and
//!   recovery codes, bring an exponential back-off and, at 100, a hard stop
//!   until an operator resets the account (NIST SP 800-63B §5.2.2).
//! - New challenges cost sends, and sends are limited per destination, per
//!   account, per caller and per country prefix.
//! - **Every guess is counted before it is checked**, whatever the secret:
//!   a sent code, a one-time link token, the masked-contact confirmation, a
//!   recovery code or an authenticator code. The guess is charged to the
//!   account's failure run with a compare-and-set that refuses it while the
//!   run locks the account; only a guess that was counted is compared. Of
//!   racing guesses for one account no more are compared than the back-off
//!   lets through (three at one instant by default), and with 99 failures
//!   on record at most one more is compared and the run stops at 100. A
//!   right code ends the run; a right confirmation answer or an opened link
//!   takes its own count back (they prove nothing by themselves). Send
//!   counters are atomic increments. `tests/guesses.rs` and the conformance
//!   kit race these on every store, also with two app instances.
//!
//! **Left to the host:** a challenge issued without an account (sign-up)
//! has no failure run to count against; its guesses are bounded by the
//! per-challenge attempts and the send limits. Pass a caller key
//! ([`IssueRequest::caller`]) so the per-caller limit applies, and put a
//! bot check in front of sign-up if it is a target.
//!
//! # Interception and replay
//!
//! *A code or link read from a notification preview, a shared screen or a
//! compromised mailbox, and used again or elsewhere.*
//!
//! - Single use: a verified code consumes its challenge, written with
//!   compare-and-set, so it can never verify again, not even in a racing
//!   request. An approved one-time link is collected by exactly one poll.
//! - Expiry: codes and links stop working after 10 minutes by default.
//! - Binding: a code verifies only for the [`Purpose`] and the destination
//!   it was issued for (a sign-up code can't approve a phone change), and
//!   its hash is bound to its challenge.
//! - Authenticator codes: a code of the last accepted step, or of any
//!   earlier one, is refused ([`Rejection::Replayed`]).
//! - Email subjects never contain the code or link (templates that would
//!   are refused), since subjects show in previews and logs.
//!
//! # Racing requests and several app instances
//!
//! *Submitting the same code, or the same recovery code, many times at
//! once, hoping two requests both succeed; or spreading attempts over
//! instances so no single counter sees them all.*
//!
//! Every state change is one atomic store call: an insert that refuses
//! duplicates, a compare-and-set on the record version (or, for failure
//! runs, on the whole run), an atomic increment. The state lives in the
//! shared store, not in process memory, so every instance sees every
//! attempt, and every guess is counted before it is compared (see
//! [Online guessing](#online-guessing)). The conformance suite checks this
//! for every store with 64 concurrent tasks and through two store handles
//! on one database (`testkit::run_all` and `testkit::race_two_instances`,
//! feature `testkit`); see [`security_model`](super::security_model#atomic-single-use).
//!
//! # SMS pumping and toll fraud
//!
//! *Making the service send SMS or place calls to numbers the attacker is
//! paid for (premium-rate ranges, or routes where a complicit carrier
//! shares the fees).*
//!
//! - Send limits per destination, account and caller, a cooldown and a
//!   per-challenge cap on resends.
//! - Budgets per country prefix ([`SendLimits::countries`] and
//!   [`SendLimits::other_countries`]): a ceiling on traffic to each
//!   country, set by the operator.
//! - The default [`PhonePolicy`] refuses foreign numbers, premium-rate,
//!   free-dial and Navi Dial numbers, IP phones and M2M ranges, and sends
//!   SMS to mobile numbers only. The contact registry ([`TwoFactor`])
//!   applies it to every number it registers.
//!
//! **Left to the host:** [`OneTimeCodes`] sends to any
//! [`Destination`](crate::model::Destination) it is given. A host that
//! issues codes to numbers that did not come through the registry checks
//! them with [`PhonePolicy::check`] first. Set country budgets before
//! opening other regions, and watch the delivery events for unusual
//! destinations.
//!
//! # Reading contacts off the second-step screen
//!
//! *Signing in with a leaked password to learn the victim's phone number or
//! email address from the methods offered, or to fire codes at them.*
//!
//! - Every masked contact the flows return for a screen (sign-in methods,
//!   tickets, contact views) follows one [`MaskPolicy`]: by default a phone
//!   number shows its last two digits and an email address at most two
//!   characters of its local part. The log form, with four digits, is kept
//!   for events and `Debug`.
//! - With masked-contact confirmation on
//!   ([`confirm_masked_contacts`](crate::service::TwoFactorBuilder::confirm_masked_contacts)),
//!   nothing is sent until the user types what no screen shows: the last
//!   four digits (two of them unseen) or the whole email address. Each
//!   wrong answer counts against the account's failure run. The policy
//!   refuses settings whose screen would show the answer.
//!
//! **Left to the host:** the confirmation slows guessing; it does not stop
//! it. Two unseen digits are 100 possible answers, which fit within the
//! hard stop after about 22 hours of back-off: ask for more digits
//! ([`MaskPolicy::new`]) where that matters. Screens of your own that a
//! password alone reaches show contacts through
//! [`Destination::masked_for`](crate::model::Destination::masked_for),
//! never [`Destination::masked`](crate::model::Destination::masked).
//!
//! # SIM swap and recycled numbers
//!
//! *Taking over the victim's number at the carrier, or receiving it after
//! the victim gave it up.*
//!
//! ninsho can't see what happens at a carrier, and NIST SP 800-63B (rev. 3,
//! §5.1.3.3) treats codes over the phone network as a *restricted*
//! authenticator for this reason. What it does:
//!
//! - Changing a contact ([`TwoFactor::phone_confirm`]) needs a code from
//!   the new contact, and bumps the account's security epoch, so every
//!   trusted device dies with the old number.
//! - A verified phone number belongs to one account at a time: whoever
//!   holds a number next can't attach it to a second account while the
//!   first holds it.
//! - Recovery codes and authenticator apps don't depend on the phone
//!   number; offer them.
//!
//! The epoch moves on with every change of a second factor — a phone
//! changed, the authenticator app replaced or removed, two-step sign-in
//! turned off — and with every recovery-code sign-in, **in the same store
//! write** as the change (the epoch lives in the account's record), so no
//! failure can spend a recovery code and leave the old devices trusted.
//! Step-up proofs carry the epoch they were proven at: after any of these,
//! an earlier proof no longer unlocks a sensitive action.
//!
//! Epochs restart at 0 when an account is deleted and made again under the
//! same id, so each account record also has a random
//! [`incarnation`](crate::model::AccountRecord::incarnation), drawn when it
//! is first written. Trusted devices, step-up proofs and sign-in codes and
//! links carry the incarnation they were issued for, and the new record
//! honours none of the old one's: not a device left behind by a deletion
//! cut off halfway, not a proof minted minutes before, not a code that
//! reached the same phone, not a retry of a sign-in that spent one. No
//! clock is compared, so instances whose clocks disagree agree on this.
//! Only where an incarnation is not known (a record or device written by a
//! version before them) does the older rule decide: whatever was issued
//! before the record was created belongs to an earlier record.
//!
//! A mailbox is a weaker channel still: it opens with a password, often
//! the same one, or one that the account's own "forgot password" mail
//! resets. NIST SP 800-63B (§5.1.3.1) rules email out for out-of-band
//! authentication, so by default a verified email address is not a second
//! factor: sign-in neither offers nor accepts an email method, and an
//! email alone can't turn two-step sign-in on.
//! [`email_as_second_factor`](crate::service::TwoFactorBuilder::email_as_second_factor)
//! turns it on for services that accept the risk.
//!
//! **Left to the host:** call
//! [`sign_out_everywhere`](crate::service::TwoFactor::sign_out_everywhere)
//! when the user asks for it and
//! [`password_changed`](crate::service::TwoFactor::password_changed) when
//! the password changes; encourage an authenticator app over SMS for
//! accounts worth stealing.
//!
//! # A hijacked session
//!
//! *Someone who got hold of a signed-in session (a stolen cookie, an
//! unlocked computer) tries to make the account theirs: add their own
//! phone or authenticator app, turn two-step sign-in off, take the recovery
//! codes.*
//!
//! - Every such action needs a fresh [`StepUp`](crate::service::StepUp): a
//!   second factor passed within the last 10 minutes. A step-up is keyed,
//!   bound to its account, and bound to the account's **security epoch**:
//!   after "sign out everywhere", a password change, a recovery-code
//!   sign-in or a second factor changed or removed, every earlier step-up
//!   is refused, like every trusted device. The actions that change
//!   factors check it inside the very write they make.
//! - Adding a contact while two-step sign-in is on counts as adding a
//!   factor and needs a step-up too.
//!
//! **Left to the host:** call
//! [`sign_out_everywhere`](crate::service::TwoFactor::sign_out_everywhere)
//! and [`password_changed`](crate::service::TwoFactor::password_changed) at
//! those moments; keep step-ups server-side, with the session.
//!
//! # Failures half-way and lost replies
//!
//! *A store outage, a timeout or a dropped connection in the middle of a
//! journey, by accident or provoked, leaving the user locked out: the code
//! spent but nothing gained.*
//!
//! - What must change together changes in one write: using a recovery code
//!   and moving the security epoch on; turning two-step sign-in off with
//!   its factors, recovery codes and devices; turning it on with its
//!   recovery codes (also when it comes with a new phone); replacing or
//!   removing a factor and moving the epoch on. They all live in the
//!   account's record.
//! - A contact confirm writes its change before it spends the code, and the
//!   record remembers the change: a failure in between leaves the code
//!   working, and the retry only spends it.
//! - "Trust this device" is optional: a sign-in whose device record can't
//!   be written still succeeds and says so
//!   ([`SignedIn::trust_failed`](crate::service::SignedIn::trust_failed)).
//! - When the store's reply is lost after the write that spent a code,
//!   link approval, recovery code or authenticator step has landed, the
//!   host sees an error; the retry of the same proof **from the same sign-in
//!   attempt** ([`SignInAttempt`](crate::service::SignInAttempt)) gets the
//!   same success, while the proof replayed from any other attempt is still
//!   refused as used.
//!
//! **Left to the host:** pass an attempt id to
//! [`sign_in_complete`](crate::service::TwoFactor::sign_in_complete), kept
//! with the pending sign-in, and retry a completion that failed with an
//! infrastructure error.
//!
//! # Dodging the contact check
//!
//! *Never verifying a contact and still signing in, by relying on the
//! grace period never running out.*
//!
//! The grace period starts the first time ninsho sees the account (at its
//! creation, or at its first contact check) and that start is **stored**:
//! the deadline never moves, however often the check runs, and no adding
//! and removing of contacts extends it. From the deadline on, sign-in is
//! blocked until a contact is verified.
//!
//! # Phishing
//!
//! *A fake site asks for the password and the code, and relays them to the
//! real one in real time.*
//!
//! No one-time code or link is phishing-resistant: a user who types a code
//! into the wrong site gives it away. ninsho narrows the opening:
//!
//! - SMS codes can end with an origin-bound line (`@example.com #123456`,
//!   [`TwoFactorBuilder::origin`]): browsers that support WebOTP and
//!   iOS autofill offer the code only on that site, so a user who relies on
//!   autofill gets no offer on the phishing page;
//! - every built-in message tells the user never to share the code (the
//!   service's staff never ask for it) and not to open a sign-in link for a
//!   sign-in they did not start;
//! - a one-time link shows the device that asked to sign in before it is
//!   approved, and can be denied.
//!
//! **Left to the host:** phishing-resistant authenticators (WebAuthn,
//! passkeys) are outside ninsho.
//!
//! # Enumeration
//!
//! *Learning whether an account, phone number or email address is
//! registered from the answers a journey gives.*
//!
//! - Journeys that take a contact answer the same way whether or not it
//!   is registered, and make the same store and gateway calls:
//!   [`TwoFactor::recover_start`](crate::service::TwoFactor::recover_start)
//!   ("I can't sign in") sends a code to any allowed number or address and
//!   tells who holds it only after that code is typed;
//!   [`TwoFactor::signup_start`](crate::service::TwoFactor::signup_start)
//!   doesn't look at registrations; adding a number another account holds
//!   sends the code all the same, and only its confirmation is refused
//!   ([`ContactRefusal::InUse`](crate::ContactRefusal::InUse)), so only
//!   whoever receives codes there learns it is taken;
//!   [`TwoFactor::sign_in_begin`](crate::service::TwoFactor::sign_in_begin)
//!   answers an unknown account as one with two-step sign-in off.
//!   `tests/enumeration.rs` compares the answers and the store calls in
//!   pairs.
//! - Challenge, verification and device ids are 128 random bits, so they
//!   can't be guessed or walked. A one-time link with an unknown id and one
//!   with a wrong secret get the same refusal
//!   ([`CodeRefusal::Unknown`](crate::CodeRefusal::Unknown)).
//!
//! **Left to the host:** keep the host's own pages (sign-up with a taken
//! email, password reset) just as discreet, and answer them in the same
//! time.
//!
//! # A copy of the database
//!
//! *A backup, a dump or a read-only SQL injection.*
//!
//! - Codes, link tokens, recovery codes and device tokens are stored only
//!   as keyed hashes; without the key, which the database never holds,
//!   nothing can be verified or guessed offline.
//! - Hashes carry their key id, so a suspected key can be replaced while
//!   old records keep verifying, then retired. The steps, and how to tell
//!   when the old key can go, are in [`key_rotation`](super::key_rotation).
//! - Authenticator seeds must be recomputed, so they are the one secret
//!   stored recoverably, and they are stored sealed: the service can't be
//!   built without a [`Sealer`](crate::seal::Sealer), and
//!   [`AeadSealer`](crate::seal::AeadSealer) encrypts each seed with a key
//!   the database never holds, bound to its account. An attacker who can
//!   also *write* to the database can't move their own authenticator's
//!   sealed seed into a victim's record: it does not open there. (They
//!   can put back an older sealed seed of the *same* account; see
//!   [`crate::seal`].)
//!
//! **Left to the host:** keep the hashing and sealing keys out of the
//! database and its backups, and never ship
//! [`DangerousUnsealed`](crate::seal::DangerousUnsealed) outside tests. If the sealing key leaks together with the data, every
//! seed is readable: rotate the key and have users set up their
//! authenticator apps again. If a hashing key leaks *together with* the
//! data, live six-digit codes can be found by trying all of them, and
//! recovery codes (about 59 bits each) become open to a costly offline
//! search; the 256-bit link and device tokens stay out of reach. Rotate
//! the key, and have the affected users regenerate their recovery codes.
//!
//! # Logs
//!
//! *Reading application logs, error reports or traces.*
//!
//! Secret types print `[redacted]`; errors carry no secret; events carry
//! no code or token and only masked destinations; [`Destination`](crate::model::Destination)
//! and [`PhoneNumber`](crate::contact::PhoneNumber) mask the address in
//! `Debug`; gateway messages redact their body and mask their recipient;
//! requests redact the caller key and the typed confirmation; the memory
//! store prints counts, never the counter keys or claims that name contacts
//! and callers. See
//! [`security_model`](super::security_model#secrets-never-print).
//!
//! **Left to the host:** a gateway must not log [`Message::body`] or
//! [`Message::secret`], and neither may the provider's request logging.
//!
//! # Timing
//!
//! *Measuring response times to learn how much of a code or token was
//! right.*
//!
//! Every secret comparison is constant-time and looks at every candidate
//! (every live code of a challenge, every step of a TOTP window, every code
//! of a recovery set) without stopping at a match. Store latency and the
//! parsing of input are not secret-dependent.
//!
//! # Denial of service against a user
//!
//! *Locking the victim out by failing on their behalf, or using up their
//! send limits.*
//!
//! This is the price of the limits above: an attacker who knows an account
//! can push it into back-off and, with enough patience, to the hard stop,
//! and can use up the sends to a phone number for ten minutes at a time.
//! The back-off is capped at 15 minutes so a user is never shut out for
//! long by it.
//!
//! A send that failed for a reason that may clear (the provider timed out
//! or throttled) starts no resend cooldown, since the user could not have
//! received it; it still counts toward the send budgets, which cap what a
//! phone or inbox receives.
//!
//! **Left to the host:** ask for the password before the second step, so
//! only someone who has it can spend the account's attempts; pass caller
//! keys; give operators [`TwoFactor::reset_failures`] behind their own
//! authentication; offer recovery codes.
//!
//! # Out of scope
//!
//! - **Transport security**: TLS between the user, the host and the
//!   providers.
//! - **Sessions**: what the host does once ninsho says "verified"; the
//!   trusted-device token must travel in an `HttpOnly`, `Secure`,
//!   `SameSite` cookie, and remembering a device skips the second step, not
//!   the password.
//! - **The first factor**: storing and checking passwords.
//! - **Key management**: generating, storing and rotating the hashing keys
//!   and the key that seals authenticator seeds.
//! - **The providers**: the security of the SMS, voice and email services
//!   and the carriers behind them.
//! - **Bot detection, CAPTCHAs and fraud scoring** beyond the limits here.
//!
//! [`IssueRequest::caller`]: crate::service::IssueRequest::caller
//! [`Purpose`]: crate::model::Purpose
//! [`Rejection::Replayed`]: crate::otp::Rejection::Replayed
//! [`SendLimits::countries`]: crate::limits::SendLimits::countries
//! [`SendLimits::other_countries`]: crate::limits::SendLimits::other_countries
//! [`PhonePolicy`]: crate::contact::PhonePolicy
//! [`MaskPolicy`]: crate::contact::MaskPolicy
//! [`MaskPolicy::new`]: crate::contact::MaskPolicy::new
//! [`PhonePolicy::check`]: crate::contact::PhonePolicy::check
//! [`TwoFactor`]: crate::service::TwoFactor
//! [`TwoFactor::phone_confirm`]: crate::service::TwoFactor::phone_confirm
//! [`OneTimeCodes`]: crate::service::OneTimeCodes
//! [`TwoFactor::reset_failures`]: crate::service::TwoFactor::reset_failures
//! [`TwoFactorBuilder::origin`]: crate::service::TwoFactorBuilder::origin
//! [`ContactRefusal::InUse`]: crate::ContactRefusal::InUse
//! [`Message::body`]: crate::gateway::Message::body
//! [`Message::secret`]: crate::gateway::Message::secret
