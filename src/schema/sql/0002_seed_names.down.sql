-- Reverses 0002_seed_names.up.sql: pgferry's version-1 names, no triggers
-- or seed views. Keeps every row (usage.id is dropped: version 1 has none).
drop trigger if exists messages_renumber_after_delete on messages;
drop function if exists pgferry_messages_renumber();
drop trigger if exists messages_next_position on messages;
drop function if exists pgferry_message_next_position();

drop trigger if exists file_moves_updated_at_2_touch on file_moves;
drop trigger if exists file_moves_updated_at_1_named on file_moves;
drop trigger if exists jobs_updated_at_2_touch on jobs;
drop trigger if exists jobs_updated_at_1_named on jobs;
drop trigger if exists submissions_updated_at_2_touch on submissions;
drop trigger if exists submissions_updated_at_1_named on submissions;
drop trigger if exists uploads_updated_at_2_touch on uploads;
drop trigger if exists uploads_updated_at_1_named on uploads;
drop trigger if exists usage_updated_at_2_touch on usage;
drop trigger if exists usage_updated_at_1_named on usage;
drop trigger if exists conversations_updated_at_2_touch on conversations;
drop trigger if exists conversations_updated_at_1_named on conversations;
drop function if exists pgferry_touch_updated_at();
drop function if exists pgferry_updated_at_named();

drop view if exists s3_migration_progress;
drop view if exists s3_migration_log;
drop view if exists user_uploads;

alter index idx_uploaded_files_submission_id rename to idx_submission_files_submission_id;
alter sequence uploaded_files_id_seq rename to submission_files_id_seq;
alter table uploaded_files rename constraint uploaded_files_file_size_check to submission_files_file_size_check;
alter table uploaded_files rename constraint uploaded_files_submission_id_fkey to submission_files_submission_id_fkey;
alter table uploaded_files rename constraint uploaded_files_pkey to submission_files_pkey;
alter table uploaded_files rename column cloudinary_public_id to public_id;
alter table uploaded_files rename column cloudinary_url to url;
alter table uploaded_files rename to submission_files;

alter table usage drop constraint usage_id_key;
alter table usage drop column id;

alter table messages rename column stage3_data to stage3;
alter table messages rename column stage2_data to stage2;
alter table messages rename column stage1_data to stage1;
