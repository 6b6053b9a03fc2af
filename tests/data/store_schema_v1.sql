-- The feedback store's SQLite schema before schema versions (robofeedback main at d7f10e1): no meta table,
-- label ids reusable, no leases table, no uniqueness of (query_id, source). Tests build old stores from it.
CREATE TABLE queries (
	id VARCHAR(64) NOT NULL, 
	run VARCHAR(200) NOT NULL, 
	kind VARCHAR(20) NOT NULL, 
	segment_ids JSON NOT NULL, 
	assignee VARCHAR(200), 
	status VARCHAR(10) NOT NULL, 
	leased_to VARCHAR(200), 
	lease_until DOUBLE, 
	meta JSON NOT NULL, 
	created_at DOUBLE NOT NULL, 
	closed_at DOUBLE, 
	PRIMARY KEY (id)
);
CREATE INDEX ix_queries_run ON queries (run);
CREATE INDEX ix_queries_status ON queries (status);
CREATE TABLE runs (
	run VARCHAR(200) NOT NULL, 
	status JSON NOT NULL, 
	updated_at DOUBLE NOT NULL, 
	PRIMARY KEY (run)
);
CREATE TABLE segments (
	id VARCHAR(128) NOT NULL, 
	run VARCHAR(200) NOT NULL, 
	env_spec VARCHAR(200) NOT NULL, 
	start_step INTEGER NOT NULL, 
	end_step INTEGER NOT NULL, 
	obs BLOB NOT NULL, 
	actions BLOB NOT NULL, 
	env_rewards BLOB NOT NULL, 
	agent_path BLOB, 
	factors BLOB, 
	frames_path VARCHAR(500), 
	video_path VARCHAR(500), 
	meta JSON NOT NULL, 
	created_at DOUBLE NOT NULL, 
	PRIMARY KEY (id)
);
CREATE INDEX ix_segments_run ON segments (run);
CREATE TABLE labels (
	id INTEGER NOT NULL, 
	run VARCHAR(200) NOT NULL, 
	kind VARCHAR(20) NOT NULL, 
	query_id VARCHAR(64), 
	segment_ids JSON NOT NULL, 
	value VARCHAR(20), 
	payload JSON NOT NULL, 
	source VARCHAR(200) NOT NULL, 
	note TEXT, 
	created_at DOUBLE NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(query_id) REFERENCES queries (id)
);
CREATE INDEX ix_labels_run ON labels (run);
CREATE INDEX ix_labels_source ON labels (source);
