await ZooKeeperBench.run()
