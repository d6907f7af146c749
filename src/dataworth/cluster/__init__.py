"""Running a study's jobs on a SLURM cluster: job resources from the study, `dataworth submit`."""
