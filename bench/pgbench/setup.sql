-- Table for the commit-ceiling script: a step-like row with a two-column primary key.
DROP TABLE IF EXISTS ceiling_step;
CREATE TABLE ceiling_step (
    workflow_id uuid NOT NULL,
    step_no int NOT NULL,
    status text NOT NULL,
    output text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workflow_id, step_no)
);
