//! Composable schedules: pure functions of position (issue 4).
