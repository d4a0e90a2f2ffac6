-- One existing contact per transaction, picked at random: two tracked columns change (score
-- always, so every statement is an event), and the ignored updated_at.
\set id random(1, :rows)
UPDATE bench.contacts
   SET score = score + 1,
       email = 'contact' || :id || '.' || (score + 1) || '@example.org',
       updated_at = now()
 WHERE id = :id;
