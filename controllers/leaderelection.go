package controllers

// LeaderElectionID names the operator replicas' leader election Lease, in the operator's own
// namespace. controller-runtime creates it without the operator's labels, so the chart's
// admission policy (which lets the operator write only labelled Leases) names it as its one
// exception; charts/chart_test.go checks that the two agree.
const LeaderElectionID = "operator.shardkeeper.dev"
