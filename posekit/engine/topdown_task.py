"""The top-down heatmap task (SimpleBaseline, HRNet, LPN, MSPN, G-RMI, hourglass): see posekit.engine.tasks."""
