-- Reverses 0004_uploads_store.up.sql: the imported unique_standards are
-- dropped (a new import of the upload store brings them back).
drop table if exists upload_user_standards;
