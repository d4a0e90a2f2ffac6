-- The benchmark data: a contacts table of :rows rows (psql -v rows=N), the same in every
-- variant's database. Only a primary key: every extra index on the tracked table would make
-- the base statement slower and so every capture ratio look better than it is.
CREATE SCHEMA bench;

-- Ids from the sequence (single-row INSERT workload) never meet preloaded ids (1..rows) nor
-- those of the bulk INSERT (id + 1,000,000 of the preloaded ones).
CREATE SEQUENCE bench.contacts_id_seq START 100000001;

CREATE TABLE bench.contacts (
    id         bigint      PRIMARY KEY DEFAULT nextval('bench.contacts_id_seq'),
    first_name text        NOT NULL,
    last_name  text        NOT NULL,
    email      text,
    phone      text,
    company    text,
    city       text,
    score      int         NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
ALTER SEQUENCE bench.contacts_id_seq OWNED BY bench.contacts.id;

-- Deterministic, realistic-looking rows: to_jsonb of one is about 250 bytes.
INSERT INTO bench.contacts
SELECT g,
       (ARRAY['Ann','Bob','Carla','Dmitri','Eve','Farid','Grace','Hiro','Ines','Jon',
              'Kofi','Lena','Mateo','Nora','Olu','Priya','Quinn','Rosa','Sven','Tariq'])[1 + g % 20],
       (ARRAY['Smith','Garcia','Müller','Rossi','Dubois','Kowalski','Nguyen','Okafor',
              'Tanaka','Silva','Jensen','Novak','Haddad','Kim','Murphy','Costa'])[1 + (g / 20) % 16],
       'contact' || g || '@example' || (g % 97) || '.com',
       '+1-555-' || lpad((g * 7919 % 10000)::text, 4, '0'),
       'Company ' || (g % 1500) || ' Ltd',
       (ARRAY['Lisbon','Berlin','Austin','Osaka','Lagos','Lyon','Krakow','Toronto'])[1 + g % 8],
       g % 1000,
       timestamptz '2024-01-01 00:00:00+00' + g * interval '37 seconds',
       timestamptz '2024-06-01 00:00:00+00' + g * interval '11 seconds'
  FROM generate_series(1, :rows) AS g;

-- Wide rows (the wide_update workload): 1,000 documents of 1 MB each, the body a 32-byte
-- text repeated (stored compressed, 1 MB again in memory for every row a statement reads).
CREATE TABLE bench.documents (
    id    int  PRIMARY KEY,
    body  text NOT NULL,
    views int  NOT NULL DEFAULT 0
);
INSERT INTO bench.documents
SELECT g, repeat(md5(g::text), 32768), 0 FROM generate_series(1, 1000) AS g;

-- To keep every measured database's pages in shared_buffers from the start.
CREATE EXTENSION pg_prewarm;
