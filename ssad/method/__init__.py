"""The method: backbones, the projection head, L_pos and L_neg, the teacher's centring, schedules, and the
LightningModule that trains the student against the EMA teacher."""
