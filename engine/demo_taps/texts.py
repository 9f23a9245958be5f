"""Template text for the synthetic mail, notes and memos of a small therapy practice.

Templates are filled once per run into small pools (see ``mail.py`` and the clinical taps);
records then pick from the pools by index, which keeps generation fast. The content is
invented but shaped like the real thing: reminders, intake forms, superbills, session notes
with ICD-10 codes. Some entries carry non-ASCII text on purpose (accents, dashes, emoji) so
the pipeline's charset handling gets exercised.
"""

from __future__ import annotations

CLINICIANS = (
    ("Dr. Riley Moss", "riley.moss"),
    ("Dr. Amina Okafor", "amina.okafor"),
    ("Jordan Castillo, LCSW", "jordan.castillo"),
    ("Dr. Henrik Solberg", "henrik.solberg"),
)

VENDORS = (
    ("Blue Harbor Health Claims", "claims@blueharbor.example.com"),
    ("SimplePractice Notifications", "no-reply@notifications.example.net"),
    ("Doe, Jane", "jane.doe@example.org"),
    ("Front Desk", "frontdesk@practice.example.org"),
    ("Oak Street Pharmacy", "rx@oakstreet.example.com"),
)

TOPICS = (
    "sleep hygiene", "grief after the move", "panic symptoms at work", "boundary setting",
    "medication side effects", "school refusal", "couples communication", "exposure hierarchy",
    "relapse prevention", "anger at a sibling", "return-to-work planning", "intrusive memories",
)

DIAGNOSES = (
    "F41.1 Generalized anxiety disorder",
    "F32.1 Major depressive disorder, single episode, moderate",
    "F43.10 Post-traumatic stress disorder, unspecified",
    "F90.0 ADHD, predominantly inattentive type",
    "F43.23 Adjustment disorder with mixed anxiety and depressed mood",
    "F42.2 Mixed obsessional thoughts and acts",
    "Z63.0 Problems in relationship with spouse or partner",
    "F40.10 Social phobia, unspecified",
)

SUBJECTS = (
    "Appointment reminder for {first}",
    "Re: Intake paperwork",
    "Fwd: Superbill for {month}",
    "Invoice #{n} from the practice",
    "Question about my session on {day}",
    "Re: Rescheduling {day}",
    "Lab results for {first} {family}",
    "Insurance pre-authorization {n}",
    "Résumé of today's session — {first}",
    "Re: Re: Telehealth link not working",
    "Café meeting notes (group practice)",
    "Thank you 🙂",
    "Referral: {first} {family}, {dx}",
    "Prescription refill request",
    "Billing question (claim {n})",
    "Weekly check-in",
)

BODIES = (
    "Hi {clin_first},\n\nI need to move my appointment on {day}. Would {time} work instead?"
    "\nWe talked about {topic} last time and I have been practising.\n\nThanks,\n{first}",
    "Hello {first},\n\nThis is a reminder of your appointment on {day} at {time} with "
    "{clin}.\nPlease reply to confirm or call the front desk.\n\nBest regards,\nFront Desk",
    "Dear {clin},\n\nPlease find attached the superbill for {first} {family} (DOB {dob}).\n"
    "Diagnosis: {dx}. CPT 90837, 3 units in {month}.\n\nRegards,\nBilling",
    "{clin_first},\n\nQuick update: {first} reported more {topic} this week. PHQ-9 was {n2}."
    "\nCan we discuss at supervision?\n\n— {clin}",
    "Hi,\n\nMy insurance changed. New member ID {n}. My address is now {street}, {city}.\n"
    "Sorry for the trouble!\n\n{first} {family}",
    "Bonjour {clin_first},\n\nMerci pour la séance. J'ai réfléchi à {topic} — c'était "
    "très utile. À jeudi !\n\n{first}",
    "Hola,\n\nSoy {first}. ¿Podemos cambiar la cita del {day}? Gracias por todo.\n\n"
    "Saludos,\n{first} {family}",
    "Hello {clin_first},\n\nThe telehealth link didn't open on my phone 😕 — could you "
    "resend it? My number is {phone}.\n\nThank you,\n{first}",
)

NOTES = (
    "{first} arrived on time. Discussed {topic}. Mood euthymic, affect congruent. "
    "PHQ-9 {n2}, GAD-7 {n3}. Plan: continue weekly CBT, homework on thought records.",
    "Client reports worsening {topic}; denies SI/HI. Reviewed safety plan. Dx {dx}. "
    "Plan: increase to twice weekly for two weeks, coordinate with PCP.",
    "Telehealth session. {first} practised grounding for {topic}. Sleep 5-6 h. "
    "Spouse joined for the last 10 minutes. Next: exposure step 3.",
    "No-show; left voicemail at {phone}. Will follow the late-cancellation policy.",
    "Family session with {first} and parent. Focus on {topic}. School meeting scheduled. "
    "Dx {dx} unchanged.",
    "Intake completed for {first} {family} (DOB {dob}). Presenting problem: {topic}. "
    "Provisional dx {dx}. Consent and release forms signed.",
)

CUSTOMER_NOTES = (
    "Prefers text reminders.",
    "Sliding scale approved {month}.",
    "Insurance: Blue Harbor PPO, member {n}.",
    "Autopay on file; receipts by email.",
    "Guarantor is parent; send statements to home address.",
)

MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")
TIMES = ("9:00 am", "10:30 am", "1:00 pm", "3:15 pm", "4:45 pm", "6:00 pm")
