-- One new contact per transaction; ids come from bench.contacts_id_seq.
\set n random(1, 1000000)
INSERT INTO bench.contacts (first_name, last_name, email, phone, company, city, score)
VALUES ('First' || :n, 'Last' || :n, 'new' || :n || '@example.org',
        '+1-555-' || lpad((:n % 10000)::text, 4, '0'), 'Company ' || (:n % 1500) || ' Ltd',
        'City ' || (:n % 200), :n % 1000);
